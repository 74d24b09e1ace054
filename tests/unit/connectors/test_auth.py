from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from connectors import auth
from tests.unit.connectors.fakes import SECRETS, MemoryPublisher, make_app_client, make_settings

BODY = b'{"action": "published"}'
GH = SECRETS["github_webhook_secret"]
JF = SECRETS["artifactory_secret"]


def test_github_signature_matches_githubs_scheme() -> None:
    expected = "sha256=" + hmac.new(GH.encode(), BODY, hashlib.sha256).hexdigest()
    assert auth.github_signature(GH, BODY) == expected
    auth.verify_github(GH, BODY, expected)
    auth.verify_github(
        GH, BODY, expected.upper().replace("SHA256=", "sha256=")
    )  # hex case is not significant


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "signature header missing"),
        ("", "signature header missing"),
        ("sha1=abc", "signature header malformed"),
        ("sha256=", "signature header malformed"),
        ("sha256=" + "0" * 64, "signature mismatch"),
        ("sha256=ünïcödé", "signature mismatch"),
    ],
)
def test_github_signature_failures_name_a_reason(header: str | None, reason: str) -> None:
    with pytest.raises(auth.AuthFailure) as info:
        auth.verify_github(GH, BODY, header)
    assert info.value.reason == reason
    assert info.value.status == 401
    assert GH not in info.value.message and GH not in info.value.reason


def test_github_signature_over_other_bytes_fails() -> None:
    with pytest.raises(auth.AuthFailure):
        auth.verify_github(GH, BODY + b" ", auth.github_signature(GH, BODY))


def test_jfrog_plain_mode_accepts_the_secret_only() -> None:
    assert auth.verify_jfrog(JF, BODY, JF, mode="plain") == "plain"
    with pytest.raises(auth.AuthFailure, match="not valid"):
        auth.verify_jfrog(JF, BODY, JF + "x", mode="plain")


def test_jfrog_hmac_mode_accepts_hex_hmac_of_the_body() -> None:
    signature = hmac.new(JF.encode(), BODY, hashlib.sha256).hexdigest()
    assert auth.verify_jfrog(JF, BODY, signature, mode="hmac-sha256") == "hmac-sha256"
    with pytest.raises(auth.AuthFailure):
        auth.verify_jfrog(JF, BODY + b"x", signature, mode="hmac-sha256")


def test_jfrog_wrong_mode_is_refused_with_a_hint_in_the_reason() -> None:
    with pytest.raises(auth.AuthFailure) as info:
        auth.verify_jfrog(JF, BODY, JF, mode="hmac-sha256")
    assert "matches plain mode" in info.value.reason
    assert JF not in info.value.reason


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer tok", "tok"),
        ("bearer  tok ", "tok"),
        ("token tok", "tok"),
        ("Basic dG9r", None),
        ("Bearer", None),
    ],
)
def test_bearer_token_parsing(header: str, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_bearer_accepts_any_token_of_the_scope() -> None:
    settings = make_settings()
    tokens = auth.scope_tokens(settings, "metadata:read")
    auth.verify_bearer("Bearer meta-read", tokens)
    auth.verify_bearer("Bearer meta-write", tokens)
    with pytest.raises(auth.AuthFailure):
        auth.verify_bearer("Bearer meta-write", auth.scope_tokens(settings, "attestations"))


def test_scope_without_any_configured_token_is_not_configured() -> None:
    settings = make_settings(metadata_read_token=None, metadata_write_token=None)
    with pytest.raises(auth.NotConfigured) as info:
        auth.scope_tokens(settings, "metadata:read")
    assert "LINKED_ARTIFACTS_METADATA_READ_TOKEN" in info.value.message
    assert info.value.status == 503


def test_non_ascii_header_values_compare_without_raising() -> None:
    assert not auth.constant_time_equal("tökén\udc80", "token")


# --- over HTTP: 401, nothing published, nothing dead-lettered, logged without the secret ----------


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def client(publisher: MemoryPublisher) -> Iterator[TestClient]:
    with make_app_client(publisher) as test_client:
        yield test_client


JSON = {"Content-Type": "application/json"}
BEARER_PATHS = [
    ("/orgs/acme/artifacts/metadata/storage-record", "meta-write"),
    ("/orgs/acme/artifacts/metadata/deployment-record", "meta-write"),
    ("/orgs/acme/artifacts/metadata/deployment-record/cluster/c1", "meta-write"),
    ("/events/attestations", "att-token"),
    ("/events/cloudevents", "ce-token"),
    ("/events/kubernetes", "k8s-token"),
    ("/events/scans", "scans-token"),
]


def assert_refused(response_status: int, publisher: MemoryPublisher) -> None:
    assert response_status == 401
    assert publisher.published == [] and publisher.dead_letters == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": auth.github_signature("other", BODY)},
    ],
    ids=["missing", "wrong", "other-secret"],
)
def test_github_webhook_with_bad_signature_is_401_and_not_stored(
    client: TestClient, publisher: MemoryPublisher, headers: dict[str, str]
) -> None:
    response = client.post(
        "/webhooks/github", content=BODY, headers={**JSON, "X-GitHub-Event": "ping", **headers}
    )
    assert_refused(response.status_code, publisher)
    assert response.json()["error"]["code"] == "unauthorized"


def test_github_webhook_with_good_signature_is_accepted(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    headers = {**JSON, "X-GitHub-Event": "package", "X-Hub-Signature-256": auth.github_signature(GH, BODY)}
    response = client.post("/webhooks/github", content=BODY, headers=headers)
    assert response.status_code == 202
    assert len(publisher.events) == 1


def test_invalid_json_with_bad_signature_is_401_not_400(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    # The signature is checked over the raw bytes before any parsing: unauthenticated garbage is never stored.
    response = client.post(
        "/webhooks/github", content=b"{not json", headers={**JSON, "X-Hub-Signature-256": "x"}
    )
    assert_refused(response.status_code, publisher)


def test_artifactory_hmac_mode_over_http(client: TestClient, publisher: MemoryPublisher) -> None:
    good = {**JSON, "X-JFrog-Event-Auth": auth.hmac_sha256_hex(JF, BODY)}
    assert client.post("/webhooks/artifactory", content=BODY, headers=good).status_code == 202
    plain = {**JSON, "X-JFrog-Event-Auth": JF}  # the plain secret is wrong in hmac mode
    response = client.post("/webhooks/artifactory", content=BODY, headers=plain)
    assert response.status_code == 401
    assert len(publisher.published) == 1


def test_artifactory_plain_mode_over_http(publisher: MemoryPublisher) -> None:
    with make_app_client(publisher, artifactory_auth_mode="plain") as client:
        headers = {**JSON, "X-JFrog-Event-Auth": JF}
        assert client.post("/webhooks/artifactory", content=BODY, headers=headers).status_code == 202
        headers = {**JSON, "X-JFrog-Event-Auth": auth.hmac_sha256_hex(JF, BODY)}
        assert client.post("/webhooks/artifactory", content=BODY, headers=headers).status_code == 401


@pytest.mark.parametrize(("path", "token"), BEARER_PATHS)
def test_bearer_endpoints_refuse_missing_and_wrong_tokens(
    client: TestClient, publisher: MemoryPublisher, path: str, token: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token}"}):
        response = client.post(path, content=BODY, headers={**JSON, **headers})
        assert_refused(response.status_code, publisher)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = client.post(path, content=BODY, headers={**JSON, "Authorization": f"Bearer {token}"})
    assert response.status_code in (200, 202)


def test_a_token_of_another_scope_is_refused(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post(
        "/events/kubernetes", content=BODY, headers={**JSON, "Authorization": "Bearer ce-token"}
    )
    assert_refused(response.status_code, publisher)


def test_bearer_is_checked_before_the_content_type(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post("/events/kubernetes", content=b"x", headers={"Content-Type": "text/plain"})
    assert_refused(response.status_code, publisher)


@pytest.mark.parametrize("event", ["dependabot_alert", "code_scanning_alert"])
def test_scans_accepts_github_signed_alerts(
    client: TestClient, publisher: MemoryPublisher, event: str
) -> None:
    headers = {**JSON, "X-GitHub-Event": event, "X-Hub-Signature-256": auth.github_signature(GH, BODY)}
    assert client.post("/events/scans", content=BODY, headers=headers).status_code == 202


def test_scans_refuses_github_signatures_for_other_events(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    headers = {**JSON, "X-GitHub-Event": "push", "X-Hub-Signature-256": auth.github_signature(GH, BODY)}
    response = client.post("/events/scans", content=BODY, headers=headers)
    assert_refused(response.status_code, publisher)
    assert response.json()["error"]["field"] == "X-GitHub-Event"


def test_scans_refuses_a_bad_github_signature(client: TestClient, publisher: MemoryPublisher) -> None:
    headers = {
        **JSON,
        "X-GitHub-Event": "dependabot_alert",
        "X-Hub-Signature-256": auth.github_signature("x", BODY),
    }
    assert_refused(client.post("/events/scans", content=BODY, headers=headers).status_code, publisher)


def test_metadata_reads_need_the_read_or_write_token(client: TestClient) -> None:
    path = "/orgs/acme/artifacts/sha256:" + "ab" * 32 + "/metadata/storage-records"
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer ce-token"}).status_code == 401
    # Accepted tokens reach the (absent) query service: 503, not 401.
    assert client.get(path, headers={"Authorization": "Bearer meta-read"}).status_code == 503
    assert client.get(path, headers={"Authorization": "Bearer meta-write"}).status_code == 503


@pytest.mark.parametrize(
    ("setting", "path", "env"),
    [
        ("github_webhook_secret", "/webhooks/github", "LINKED_ARTIFACTS_GITHUB_WEBHOOK_SECRET"),
        ("artifactory_secret", "/webhooks/artifactory", "LINKED_ARTIFACTS_ARTIFACTORY_SECRET"),
        ("kubernetes_token", "/events/kubernetes", "LINKED_ARTIFACTS_KUBERNETES_TOKEN"),
        (
            "metadata_write_token",
            "/orgs/a/artifacts/metadata/storage-record",
            "LINKED_ARTIFACTS_METADATA_WRITE_TOKEN",
        ),
    ],
)
def test_unconfigured_secret_disables_the_endpoint_with_503(
    publisher: MemoryPublisher, setting: str, path: str, env: str
) -> None:
    with make_app_client(publisher, **{setting: None}) as client:
        headers = {**JSON, "Authorization": "Bearer anything", "X-Hub-Signature-256": "sha256=00"}
        response = client.post(path, content=BODY, headers=headers)
    assert response.status_code == 503
    assert env in response.json()["error"]["message"]
    assert "Retry-After" in response.headers
    assert publisher.published == [] and publisher.dead_letters == []


def test_auth_failures_are_logged_with_source_remote_and_reason_but_not_the_secret(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="connectors")
    client.post(
        "/webhooks/artifactory",
        content=BODY,
        headers={**JSON, "X-JFrog-Event-Auth": JF, "X-Request-Id": "r-1"},
    )
    lines = [r.getMessage() for r in caplog.records if "401" in r.getMessage()]
    assert len(lines) == 1
    assert "artifactory" in lines[0] and "testclient" in lines[0] and "matches plain mode" in lines[0]
    assert "delivery=r-1" in lines[0]
    assert all(JF not in r.getMessage() for r in caplog.records)
