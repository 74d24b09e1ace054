"""The provenance link: /attestations/<sha256> serves the original attestation bytes as a download."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from history.client import Warehouse
from web.attestations import AttestationsUnavailable

from .conftest import BEARER

RAW = b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "<script>"}]}'
SHA = hashlib.sha256(RAW).hexdigest()


class Store:
    def __init__(self, *, down: bool = False) -> None:
        self.down = down

    async def fetch(self, sha256_hex: str) -> bytes | None:
        if self.down:
            raise AttestationsUnavailable("Kafka at 127.0.0.1:1 cannot be read: connection refused")
        return RAW if sha256_hex == SHA else None


@pytest.fixture
def client(database: Warehouse, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database, attestations=Store())


def test_the_bytes_are_served_as_a_download_never_rendered(client: TestClient) -> None:
    response = client.get(f"/attestations/{SHA}", headers=BEARER)
    assert response.status_code == 200
    assert response.content == RAW
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_sha256_prefix_is_accepted(client: TestClient) -> None:
    assert client.get(f"/attestations/sha256:{SHA}", headers=BEARER).content == RAW


def test_an_unknown_attestation_is_a_404_with_a_reason(client: TestClient) -> None:
    response = client.get(f"/attestations/{'0' * 64}", headers=BEARER)
    assert response.status_code == 404 and "No attestation" in response.text


def test_something_that_is_not_a_sha256_is_refused(client: TestClient) -> None:
    assert client.get("/attestations/..%2F..%2Fetc%2Fpasswd", headers=BEARER).status_code in (404, 422)
    assert client.get("/attestations/xyz", headers=BEARER).status_code == 422


def test_an_unreachable_store_names_the_fix(database: Warehouse, client_for: Callable[..., TestClient]) -> None:
    response = client_for(database, attestations=Store(down=True)).get(f"/attestations/{SHA}", headers=BEARER)
    assert response.status_code == 503
    assert "connection refused" in response.text and "linked-artifacts up" in response.text


def test_without_a_store_the_page_says_where_the_bytes_are(database: Warehouse,
                                                          client_for: Callable[..., TestClient]) -> None:
    response = client_for(database).get(f"/attestations/{SHA}", headers=BEARER)
    assert response.status_code == 503 and "attestations topic" in response.text
