"""One artifact's page: the linked view (storage and tags over time, builds with provenance, deployments with
runtime risks and who asserted them, ranked alerts with reasons, linked digests) and its timeline."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from history.client import Warehouse
from history.linked_view import linked_view
from tests.unit.history.builders import Triage, at

from .conftest import BEARER, insert


@pytest.fixture(scope="module")
def triage(database: Warehouse) -> Iterator[Triage]:
    history = Triage()
    insert(database, history.events)
    yield history


@pytest.fixture
def client(database: Warehouse, triage: Triage, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


def page(client: TestClient, digest: str, **params: str) -> str:
    response = client.get(f"/artifacts/{digest}", params=params, headers=BEARER)
    assert response.status_code == 200, response.text[:400]
    return str(response.text)


def section(html: str, name: str) -> str:
    start = html.index(f'id="section-{name}"')
    return html[start:html.index("</section>", start)]


def test_a_platform_digest_opens_its_artifact(client: TestClient, triage: Triage) -> None:
    html = page(client, triage.arm64)
    digests = section(html, "digests")
    for d in (triage.index, triage.amd64, triage.arm64):
        assert f'data-digest="{d}"' in digests
    assert "linux/arm64" in digests and "linux/amd64" in digests and "image index" in digests


def test_storage_shows_locations_and_tags_over_time(client: TestClient, triage: Triage) -> None:
    storage = section(page(client, triage.index), "storage")
    assert "docker-prod" in storage and "docker-local" in storage
    assert "deleted" in storage  # the move left docker-local
    assert '<span class="tag">1.0</span>' in storage and '<span class="tag">latest</span>' in storage
    assert "2025-03-03 09:01 UTC" in storage  # tag 1.0 first seen at minute 1


def test_builds_show_provenance_with_a_link_to_the_attestation_bytes(client: TestClient, triage: Triage) -> None:
    builds = section(page(client, triage.index), "builds")
    assert "acme/payments-api" in builds
    assert "#42" in builds and "c0ffee" in builds
    assert "https://github.com/actions/runner" in builds
    assert f'href="/attestations/{"a" * 64}"' in builds
    assert "completed success" in builds


def test_deployments_show_environment_cluster_risks_and_who_asserted_them(client: TestClient, triage: Triage) -> None:
    deployments = section(page(client, triage.index), "deployments")
    assert 'data-environment="prod"' in deployments and 'data-cluster="aks-prod-1"' in deployments
    assert "internet-exposed" in deployments and "defender-for-cloud" in deployments
    assert "eu-west" in deployments


def test_alerts_are_ranked_with_the_reason_for_each_rank(client: TestClient, database: Warehouse,
                                                        triage: Triage) -> None:
    alerts = section(page(client, triage.index), "alerts")
    view = linked_view(database, triage.index)
    assert view is not None
    shown = re.findall(r'<tr data-alert-key="([^"]+)"', alerts)
    assert shown == [a["alert_key"] for a in view["alerts"]]
    top = view["alerts"][0]
    for reason in top["reasons"]:
        assert f"<li>{reason}</li>" in alerts
    assert f"<strong>{top['score']}</strong>" in alerts


def test_the_summary_counts_match_the_linked_view(client: TestClient, database: Warehouse, triage: Triage) -> None:
    html = page(client, triage.index)
    view = linked_view(database, triage.index)
    assert view is not None
    open_alerts = sum(1 for a in view["alerts"] if a["state"] == "open")
    assert f'id="open-alert-count" data-count="{open_alerts}"' in html
    assert f'id="deployment-count" data-count="{len(view["deployments"])}"' in html


def test_the_timeline_has_a_lane_for_storage_builds_and_each_deployment_slot(client: TestClient,
                                                                             triage: Triage) -> None:
    timeline = section(page(client, triage.index), "timeline")
    assert "<svg" in timeline
    lanes = re.findall(r'data-lane="([^"]+)"', timeline)
    assert lanes[:2] == ["stored", "built"]
    assert any(lane.startswith("prod · aks-prod-1") for lane in lanes)
    assert "deployed" in timeline and "moved (active)" in timeline


def test_the_timeline_ends_a_stay_when_another_image_takes_the_slot(client: TestClient, triage: Triage) -> None:
    timeline = section(page(client, triage.old), "timeline")
    assert "superseded by" in timeline


def test_the_timeline_ends_a_stay_when_the_workload_is_deleted(client: TestClient, triage: Triage) -> None:
    timeline = section(page(client, triage.gone), "timeline")
    assert "workload removed" in timeline


def test_as_of_shows_the_artifact_as_it_was(client: TestClient, triage: Triage) -> None:
    before = page(client, triage.index, as_of=at(5).strftime("%Y-%m-%dT%H:%M:%S"))
    assert "As of 2025-03-03 09:05 UTC" in before
    assert "Not deployed anywhere at that time" in section(before, "deployments")


def test_an_unknown_digest_is_a_404_that_says_what_to_do(client: TestClient) -> None:
    response = client.get(f"/artifacts/sha256:{'0' * 64}", headers=BEARER)
    assert response.status_code == 404
    assert "Nothing is known about" in response.text and "linked-artifacts demo" in response.text


def test_a_malformed_digest_is_a_422_that_shows_the_right_form(client: TestClient) -> None:
    response = client.get("/artifacts/not-a-digest", headers=BEARER)
    assert response.status_code == 422
    assert "sha256:" in response.text and "Fix:" in response.text


def test_a_bad_as_of_names_the_fix(client: TestClient, triage: Triage) -> None:
    response = client.get(f"/artifacts/{triage.index}", params={"as_of": "yesterday"}, headers=BEARER)
    assert response.status_code == 400
    assert "as-of" in response.text and "Pick a time" in response.text
