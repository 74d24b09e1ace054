"""Test doubles for the connectors app: an in-memory publisher (unit tier only) and a stub parser."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from connectors.app import create_app
from connectors.base import Delivery, InputError, ParseResult, event_id
from connectors.endpoints import ENDPOINTS
from connectors.publisher import ComponentHealth, PublisherUnavailable
from linked_artifacts.events import ArtifactEvent, DeadLetter, StorageBody
from linked_artifacts.settings import Settings

DIGEST = "sha256:" + "ab" * 32

SECRETS: dict[str, str] = {
    "github_webhook_secret": "gh-secret",
    "artifactory_secret": "jfrog-secret",
    "metadata_write_token": "meta-write",
    "metadata_read_token": "meta-read",
    "attestations_token": "att-token",
    "cloudevents_token": "ce-token",
    "kubernetes_token": "k8s-token",
    "scans_token": "scans-token",
    "query_token": "query-token",
}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        **SECRETS,
        "max_body_bytes": 4096,
        "max_json_depth": 8,
        "max_json_items": 200,
        "query_port": 1,  # nothing listens there: the query service is "down"
        **overrides,
    }
    return Settings(**values)


class MemoryPublisher:
    """Keeps what it was given. ``fail`` makes every call raise PublisherUnavailable (Kafka down)."""

    def __init__(self) -> None:
        self.published: list[tuple[ParseResult, Delivery]] = []
        self.dead_letters: list[DeadLetter] = []
        self.fail = False
        self.fail_dead_letters = False
        self.started = False
        self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def publish(self, result: ParseResult, delivery: Delivery) -> None:
        if self.fail:
            raise PublisherUnavailable("Kafka is down (test)")
        self.published.append((result, delivery))

    async def publish_dead_letter(self, record: DeadLetter) -> None:
        if self.fail or self.fail_dead_letters:
            raise PublisherUnavailable("Kafka is down (test)")
        self.dead_letters.append(record)

    async def health(self) -> dict[str, ComponentHealth]:
        ok = not self.fail
        return {"kafka": ComponentHealth(ok, "memory"), "schema_registry": ComponentHealth(True, "memory")}

    @property
    def events(self) -> list[ArtifactEvent]:
        return [e for result, _ in self.published for e in result.events]


def stub_parser(delivery: Delivery, payload: Any) -> ParseResult:
    """A tiny parser: {"ignore": "why"} is ignored, {"bad": ...} is refused naming `bad`,
    {"crash": ...} raises a bug, {"response": {...}} answers it; anything else gives one storage event."""
    if not isinstance(payload, dict):
        raise InputError("expected an object", field="$")
    if "ignore" in payload:
        return ParseResult(ignored=True, note=str(payload["ignore"]))
    if "bad" in payload:
        raise InputError("bad: not allowed", field="bad", status=422, code="invalid_bad")
    if "crash" in payload:
        raise KeyError("crash")
    event = ArtifactEvent(
        event_id=event_id(delivery.endpoint, delivery.body_sha256),
        key=DIGEST,
        kind="storage",
        source="demo",
        digest=DIGEST,
        event_time=datetime(2026, 5, 5, tzinfo=UTC),
        ingest_time=delivery.received_at,
        delivery_id=delivery.header("x-github-delivery") or delivery.body_sha256[:16],
        storage=StorageBody(
            registry="demo", registry_url="https://r.example/", repository="r", action="pushed"
        ),
    )
    return ParseResult(events=(event,), response=payload.get("response"))


STUB_PARSERS = {spec.name: stub_parser for spec in ENDPOINTS}


def make_app_client(publisher: MemoryPublisher, **settings: Any) -> TestClient:
    """A TestClient over the app with the stub parsers and the in-memory publisher (use it in `with`)."""
    app = create_app(make_settings(**settings), publisher=publisher, parsers=STUB_PARSERS)
    return TestClient(app, raise_server_exceptions=False)
