from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import auth
from connectors.app import create_app
from connectors.endpoints import ENDPOINTS
from linked_artifacts.events import DeadLetter
from tests.unit.connectors.fakes import (
    DIGEST,
    SECRETS,
    STUB_PARSERS,
    MemoryPublisher,
    make_app_client,
    make_settings,
)

JSON = {"Content-Type": "application/json"}
K8S = {**JSON, "Authorization": "Bearer k8s-token"}
GOOD = json.dumps({"kind": "Pod"}).encode()


@pytest.fixture
def publisher() -> MemoryPublisher:
    return MemoryPublisher()


@pytest.fixture
def client(publisher: MemoryPublisher) -> Iterator[TestClient]:
    with make_app_client(publisher) as test_client:
        yield test_client


def only_dead_letter(publisher: MemoryPublisher) -> DeadLetter:
    assert publisher.published == []
    assert len(publisher.dead_letters) == 1
    return publisher.dead_letters[0]


def test_lifespan_starts_and_stops_the_publisher(publisher: MemoryPublisher) -> None:
    with make_app_client(publisher):
        assert publisher.started and not publisher.stopped
    assert publisher.stopped


# --- success paths --------------------------------------------------------------------------------


def test_accepted_input_answers_202_with_the_event_ids(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    response = client.post("/events/kubernetes", content=GOOD, headers=K8S)
    assert response.status_code == 202
    (event,) = publisher.events
    assert response.json() == {"accepted": 1, "event_ids": [event.event_id]}
    (_, delivery) = publisher.published[0]
    assert delivery.endpoint == "/events/kubernetes"
    assert delivery.body == GOOD
    assert delivery.header("Content-Type") == "application/json"  # lower-cased names, any-case lookup
    assert delivery.header("Authorization") is None  # credentials are checked, then dropped
    assert delivery.sender == {}


def test_kubernetes_deliveries_carry_the_configured_cluster(publisher: MemoryPublisher) -> None:
    with make_app_client(publisher, kubernetes_cluster="aks-1", kubernetes_environment="prod") as client:
        assert client.post("/events/kubernetes", content=GOOD, headers=K8S).status_code == 202
    assert publisher.published[0][1].sender == {"cluster": "aks-1", "environment": "prod"}


def test_path_parameters_reach_the_parser(client: TestClient, publisher: MemoryPublisher) -> None:
    headers = {**JSON, "Authorization": "Bearer meta-write"}
    path = "/orgs/acme/artifacts/metadata/deployment-record/cluster/aks-1"
    assert client.post(path, content=GOOD, headers=headers).status_code == 202
    delivery = publisher.published[0][1]
    assert delivery.path_params == {"org": "acme", "cluster": "aks-1"}
    assert delivery.endpoint == path


def test_parser_response_is_answered_with_200(client: TestClient, publisher: MemoryPublisher) -> None:
    answer = {"total_count": 1, "storage_records": [{"digest": DIGEST}]}
    headers = {**JSON, "Authorization": "Bearer meta-write"}
    response = client.post(
        "/orgs/acme/artifacts/metadata/storage-record",
        content=json.dumps({"response": answer}),
        headers=headers,
    )
    assert (response.status_code, response.json()) == (200, answer)
    assert len(publisher.events) == 1


def test_ignored_input_is_200_and_publishes_nothing(client: TestClient, publisher: MemoryPublisher) -> None:
    body = json.dumps({"ignore": "ping"}).encode()
    headers = {
        **JSON,
        "X-GitHub-Event": "ping",
        "X-Hub-Signature-256": auth.github_signature("gh-secret", body),
    }
    response = client.post("/webhooks/github", content=body, headers=headers)
    assert (response.status_code, response.json()) == (200, {"ignored": True, "reason": "ping"})
    assert publisher.published == [] and publisher.dead_letters == []


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/events/cloudevents", "application/cloudevents+json"),
        ("/events/cloudevents", "application/cloudevents-batch+json; charset=utf-8"),
        ("/events/cloudevents", "application/json"),
        ("/events/attestations", "application/vnd.dev.sigstore.bundle.v0.3+json"),
        ("/events/kubernetes", "Application/JSON; charset=UTF-8"),
    ],
)
def test_accepted_content_types(client: TestClient, path: str, content_type: str) -> None:
    token = {"/events/cloudevents": "ce-token", "/events/attestations": "att-token"}.get(path, "k8s-token")
    headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
    assert client.post(path, content=GOOD, headers=headers).status_code == 202


# --- size limits: 413 -----------------------------------------------------------------------------


def test_body_over_the_limit_by_content_length_is_413(client: TestClient, publisher: MemoryPublisher) -> None:
    response = client.post("/events/kubernetes", content=b"[" + b" " * 5000 + b"]", headers=K8S)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert publisher.published == [] and publisher.dead_letters == []


def test_chunked_body_over_the_limit_is_413(client: TestClient, publisher: MemoryPublisher) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(10):
            yield b" " * 1000
        yield b"]"

    response = client.post("/events/kubernetes", content=chunks(), headers=K8S)
    assert response.status_code == 413
    assert publisher.published == [] and publisher.dead_letters == []


async def test_streaming_stops_reading_right_after_the_limit(publisher: MemoryPublisher) -> None:
    app = create_app(make_settings(), publisher=publisher, parsers=STUB_PARSERS)
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 1 MB offered against a 4096-byte limit
            sent += 1
            yield b" " * 1000

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/events/kubernetes", content=chunks(), headers=K8S)
    assert response.status_code == 413
    assert sent <= 6  # 4096 bytes is 5 chunks of 1000: the 5th crosses the limit and reading stops


async def test_a_lying_content_length_is_refused_before_reading(publisher: MemoryPublisher) -> None:
    app = create_app(make_settings(), publisher=publisher, parsers=STUB_PARSERS)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        big = await client.post(
            "/events/kubernetes", content=GOOD, headers={**K8S, "Content-Length": "999999"}
        )
        junk = await client.post("/events/kubernetes", content=GOOD, headers={**K8S, "Content-Length": "1e3"})
    assert big.status_code == 413
    assert (junk.status_code, junk.json()["error"]["code"]) == (400, "invalid_content_length")


# --- content type: 415 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/events/kubernetes", None),
        ("/events/kubernetes", "text/plain"),
        ("/events/kubernetes", "application/x-www-form-urlencoded"),
        ("/events/kubernetes", "application/json; charset=latin-1"),
        ("/events/cloudevents", "application/vnd.other+json"),
    ],
)
def test_wrong_content_type_is_415_naming_the_accepted_types(
    client: TestClient, publisher: MemoryPublisher, path: str, content_type: str | None
) -> None:
    token = "ce-token" if "cloudevents" in path else "k8s-token"
    headers = {"Authorization": f"Bearer {token}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = client.post(path, content=GOOD, headers=headers)
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_media_type" and "application/json" in error["message"]
    if "cloudevents" in path:
        assert "application/cloudevents-batch+json" in error["message"]
    assert publisher.published == [] and publisher.dead_letters == []


# --- malformed input: 4xx and a dead letter -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"kind": "Pod", "spec": {', 400, "invalid_json"),
        (b'{"kind": "P\xe9d"}', 400, "invalid_encoding"),
        (b"", 400, "empty_body"),
        (b"[" * 9 + b"]" * 9, 422, "too_deep"),
        (json.dumps(list(range(300))).encode(), 413, "too_many_values"),
        (b'{"a": 1, "a": 2}', 422, "duplicate_key"),
    ],
    ids=["truncated", "not-utf8", "empty", "deep", "many-values", "duplicate-key"],
)
def test_malformed_json_is_refused_and_dead_lettered(
    client: TestClient, publisher: MemoryPublisher, body: bytes, status: int, code: str
) -> None:
    response = client.post("/events/kubernetes", content=body, headers={**K8S, "X-Request-Id": "r-7"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    record = only_dead_letter(publisher)
    assert (record.body, record.error_code, record.endpoint) == (body, code, "/events/kubernetes")
    assert record.stage == "connectors" and record.content_type == "application/json"
    assert record.reason == response.json()["error"]["message"]
    assert "authorization" not in {k.lower() for k in record.headers}


def test_parser_refusal_answers_its_status_and_names_the_field(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    response = client.post("/events/kubernetes", content=b'{"bad": 1}', headers=K8S)
    assert response.status_code == 422
    assert response.json() == {
        "error": {"code": "invalid_bad", "message": "bad: not allowed", "field": "bad"}
    }
    assert only_dead_letter(publisher).error_code == "invalid_bad"


def test_parser_exception_is_422_not_500_and_keeps_the_input(
    client: TestClient, publisher: MemoryPublisher, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post("/events/kubernetes", content=b'{"crash": 1}', headers=K8S)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unprocessable"
    assert only_dead_letter(publisher).body == b'{"crash": 1}'
    assert any("parser kubernetes failed" in r.getMessage() for r in caplog.records)


def test_dead_letter_keeps_replay_headers_only(client: TestClient, publisher: MemoryPublisher) -> None:
    body = b"{broken"
    signature = auth.github_signature("gh-secret", body)
    headers = {
        **JSON,
        "X-GitHub-Event": "registry_package",
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": signature,
        "Authorization": "Bearer leaked?",
        "Cookie": "c=1",
        "User-Agent": "GitHub-Hookshot/1",
    }
    assert client.post("/webhooks/github", content=body, headers=headers).status_code == 400
    record = only_dead_letter(publisher)
    assert record.headers == {
        "content-type": "application/json",
        "x-github-event": "registry_package",
        "x-github-delivery": "d-1",
        "x-hub-signature-256": signature,
    }


def test_jfrog_auth_header_is_kept_only_when_it_is_an_hmac(publisher: MemoryPublisher) -> None:
    body = b"{broken"
    with make_app_client(publisher) as client:  # hmac-sha256 mode: the header is a signature
        signature = auth.hmac_sha256_hex("jfrog-secret", body)
        client.post("/webhooks/artifactory", content=body, headers={**JSON, "X-JFrog-Event-Auth": signature})
    with make_app_client(publisher, artifactory_auth_mode="plain") as client:  # the header is the secret
        client.post(
            "/webhooks/artifactory", content=body, headers={**JSON, "X-JFrog-Event-Auth": "jfrog-secret"}
        )
    hmac_record, plain_record = publisher.dead_letters
    assert hmac_record.headers["x-jfrog-event-auth"] == signature
    assert "x-jfrog-event-auth" not in plain_record.headers
    assert all(SECRETS["artifactory_secret"] not in v for v in plain_record.headers.values())


# --- Kafka unavailable: 503, never 2xx ------------------------------------------------------------


def test_publisher_unavailable_is_503_with_retry_after(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    publisher.fail = True
    response = client.post("/events/kubernetes", content=GOOD, headers=K8S)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "unavailable"
    assert publisher.published == []


def test_refused_input_that_cannot_be_dead_lettered_is_503(
    client: TestClient, publisher: MemoryPublisher
) -> None:
    publisher.fail_dead_letters = True
    response = client.post("/events/kubernetes", content=b"{broken", headers=K8S)
    assert response.status_code == 503
    assert "Retry-After" in response.headers
    assert "invalid_json" in response.json()["error"]["message"]


# --- metadata reads: forwarded to the query service -----------------------------------------------


def test_metadata_read_is_forwarded_with_the_query_token(client: TestClient) -> None:
    seen: list[httpx.Request] = []

    def query_service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"total_count": 0, "storage_records": []})

    client.app.state.runtime.http = httpx.AsyncClient(transport=httpx.MockTransport(query_service))  # type: ignore[attr-defined]
    digest = "sha256:" + "AB" * 32
    response = client.get(
        f"/orgs/acme/artifacts/{digest}/metadata/storage-records?per_page=5",
        headers={"Authorization": "Bearer meta-read"},
    )
    assert (response.status_code, response.json()) == (200, {"total_count": 0, "storage_records": []})
    (request,) = seen
    assert request.url.path == f"/v1/artifacts/{DIGEST}/storage-records"  # normalised digest
    assert request.url.params["per_page"] == "5"
    assert request.headers["Authorization"] == "Bearer query-token"


def test_metadata_read_passes_the_query_services_status_through(client: TestClient) -> None:
    client.app.state.runtime.http = httpx.AsyncClient(  # type: ignore[attr-defined]
        transport=httpx.MockTransport(lambda _r: httpx.Response(404, json={"message": "Not Found"}))
    )
    response = client.get(
        f"/orgs/acme/artifacts/{DIGEST}/metadata/deployment-records",
        headers={"Authorization": "Bearer meta-read"},
    )
    assert (response.status_code, response.json()) == (404, {"message": "Not Found"})


def test_metadata_read_when_the_query_service_is_down_is_503(client: TestClient) -> None:
    response = client.get(
        f"/orgs/acme/artifacts/{DIGEST}/metadata/storage-records",
        headers={"Authorization": "Bearer meta-read"},
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "query service" in response.json()["error"]["message"]


def test_metadata_read_of_an_invalid_digest_is_422(client: TestClient) -> None:
    response = client.get(
        "/orgs/acme/artifacts/latest/metadata/storage-records", headers={"Authorization": "Bearer meta-read"}
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "subject_digest"


# --- operations -----------------------------------------------------------------------------------


def test_healthz_and_readyz(client: TestClient, publisher: MemoryPublisher) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    publisher.fail = True
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["kafka"] == {"ok": False, "detail": "memory"}


def test_metrics_count_requests_rejects_events_and_dead_letters(client: TestClient) -> None:
    client.post("/events/kubernetes", content=GOOD, headers=K8S)
    client.post("/events/kubernetes", content=b"{", headers=K8S)
    client.post("/events/kubernetes", content=GOOD, headers=JSON)
    text = client.get("/metrics").text
    prefix = "linked_artifacts_connector"
    assert f'{prefix}_requests_total{{endpoint="/events/kubernetes",method="POST",status="202"}} 1.0' in text
    assert f'{prefix}_rejects_total{{code="unauthorized",endpoint="kubernetes",reason="auth"}} 1.0' in text
    assert f'{prefix}_events_published_total{{kind="storage",source="demo"}} 1.0' in text
    assert f'{prefix}_dead_letters_total{{code="invalid_json",endpoint="kubernetes"}} 1.0' in text
    assert "linked_artifacts_connector_produce_seconds_bucket" in text
    # The process and its garbage collector (linked_artifacts.gc_tuning), for a connector that slows down.
    assert 'python_gc_collections_total{generation="0"}' in text
    assert 'la_gc_threshold{generation="0"}' in text


def test_unknown_paths_answer_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "http_error"


def test_openapi_documents_every_endpoint_with_bodies_and_security(client: TestClient) -> None:
    schema: dict[str, Any] = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/webhooks/github",
        "/webhooks/artifactory",
        "/orgs/{org}/artifacts/metadata/storage-record",
        "/orgs/{org}/artifacts/metadata/deployment-record",
        "/orgs/{org}/artifacts/metadata/deployment-record/cluster/{cluster}",
        "/events/attestations",
        "/events/cloudevents",
        "/events/kubernetes",
        "/events/scans",
    ):
        operation = paths[path]["post"]
        assert operation["requestBody"]["required"] is True
        assert operation["security"]
        assert {"202", "401", "413", "415", "503"} <= set(operation["responses"])
    storage = paths["/orgs/{org}/artifacts/metadata/storage-record"]["post"]["requestBody"]["content"]
    assert storage["application/json"]["schema"]["required"] == ["name", "digest", "registry_url"]
    assert set(paths["/events/cloudevents"]["post"]["requestBody"]["content"]) >= {
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert "/orgs/{org}/artifacts/{subject_digest}/metadata/storage-records" in paths
    assert set(schema["components"]["securitySchemes"]) == {"bearerAuth", "githubSignature", "jfrogEventAuth"}


def test_log_lines_carry_endpoint_and_delivery_id(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="connectors")
    client.post("/events/kubernetes", content=GOOD, headers={**K8S, "X-Request-Id": "req-42"})
    lines = [r for r in caplog.records if getattr(r, "delivery_id", None) == "req-42"]
    assert lines and all(r.endpoint == "/events/kubernetes" for r in lines)  # type: ignore[attr-defined]
    assert any("accepted 1 events" in r.getMessage() and "delivery=req-42" in r.getMessage() for r in lines)


# --- property: whatever arrives, the answer is never a 5xx other than 503 -------------------------

PAYLOADS = Path(__file__).parent / "payloads"
SAMPLES: list[Any] = [json.loads(p.read_text()) for p in sorted(PAYLOADS.glob("*/*.json"))] or [
    {"kind": "Pod"}
]
TOKENS = {
    "github": None,
    "artifactory": None,
    "storage-record": "meta-write",
    "deployment-record": "meta-write",
    "cluster-deployment-records": "meta-write",
    "attestations": "att-token",
    "cloudevents": "ce-token",
    "kubernetes": "k8s-token",
    "scans": "scans-token",
}
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


def _mutate(value: Any, data: st.DataObject) -> Any:
    """Replace one node of a realistic payload with an arbitrary JSON value."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], _mutate(value[index], data), *value[index + 1 :]]
    return data.draw(json_values)


@pytest.fixture(scope="module")
def real_parsers_client() -> Iterator[tuple[TestClient, MemoryPublisher]]:
    publisher = MemoryPublisher()
    # The real source parsers (whatever they raise, the app must answer 4xx), with generous JSON limits.
    app = create_app(
        make_settings(max_body_bytes=64 * 1024, max_json_depth=32, max_json_items=5000), publisher=publisher
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, publisher


@given(data=st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_input_makes_a_5xx_other_than_503(
    real_parsers_client: tuple[TestClient, MemoryPublisher], data: st.DataObject
) -> None:
    client, publisher = real_parsers_client
    spec = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    path = spec.path.replace("{org}", "acme").replace(
        "{cluster}", data.draw(st.sampled_from(["c1", "aks-prod"]))
    )
    kind = data.draw(st.sampled_from(["bytes", "json", "sample", "mutated sample"]), label="body kind")
    if kind == "bytes":
        body = data.draw(st.binary(max_size=400))
    elif kind == "json":
        body = json.dumps(data.draw(json_values)).encode()
    elif kind == "sample":
        body = json.dumps(data.draw(st.sampled_from(SAMPLES))).encode()
    else:
        body = json.dumps(_mutate(data.draw(st.sampled_from(SAMPLES)), data)).encode()
    usually = st.integers(0, 4).map(bool)  # True 4 times in 5: most inputs should reach the parsers
    content_types = st.sampled_from(["application/cloudevents+json", "text/plain", ""]) | header_text
    headers = {"Content-Type": "application/json" if data.draw(usually) else data.draw(content_types)}
    if data.draw(usually, label="authenticated"):
        token = TOKENS[spec.name]
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers["X-Hub-Signature-256"] = auth.github_signature("gh-secret", body)
        headers["X-JFrog-Event-Auth"] = auth.hmac_sha256_hex("jfrog-secret", body)
    else:
        headers["Authorization"] = data.draw(header_text)
        headers["X-Hub-Signature-256"] = data.draw(header_text)
    headers["X-GitHub-Event"] = data.draw(
        st.sampled_from(["registry_package", "package", "workflow_run", "ping", "dependabot_alert"])
        | header_text
    )
    headers["X-GitHub-Delivery"] = data.draw(header_text)
    for name in data.draw(
        st.lists(st.sampled_from(["ce-id", "ce-source", "ce-specversion", "X-Request-Id"]))
    ):
        headers[name] = data.draw(header_text)
    publisher.fail = data.draw(st.integers(0, 9)) == 0  # now and then Kafka is down

    response = client.post(path, content=body, headers=headers)

    assert response.status_code < 500 or response.status_code == 503, response.text
    if response.status_code == 503:
        assert response.headers.get("Retry-After")
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "field"}


def test_real_metadata_api_parser_answers_200_with_githubs_record_shape(publisher: MemoryPublisher) -> None:
    app = create_app(make_settings(), publisher=publisher)  # the real source parsers
    body = {
        "name": "acme/payments-api",
        "digest": DIGEST,
        "registry_url": "https://acme.jfrog.io/artifactory/",
        "repository": "docker-prod-local",
    }
    with TestClient(app) as client:
        response = client.post(
            "/orgs/acme/artifacts/metadata/storage-record",
            content=json.dumps(body),
            headers={**JSON, "Authorization": "Bearer meta-write"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["total_count"] == 1
    assert response.json()["storage_records"][0]["digest"] == DIGEST
    assert [e.digest for e in publisher.events] == [DIGEST]
