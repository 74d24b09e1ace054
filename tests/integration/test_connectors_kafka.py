"""The connectors against the real broker and registry: what a 2xx promised is on Kafka, byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from fastapi import FastAPI

from connectors import auth
from connectors.app import create_app, uvicorn_config
from connectors.base import Delivery, InputError, ParseResult, event_id
from connectors.deadletter import replay_async
from connectors.publisher import KafkaPublisher, PublisherUnavailable
from connectors.sources.github import parse_github
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent, DeadLetter, StorageBody
from linked_artifacts.settings import Settings
from linked_artifacts.topics import attestations_topic, dead_letter_topic, events_topic
from tests.conftest import Stack, free_port

pytestmark = pytest.mark.integration

PAYLOADS = Path(__file__).parents[1] / "unit" / "connectors" / "payloads"


# --- helpers --------------------------------------------------------------------------------------


async def read_topic(
    settings: Settings, topic: str, match: Callable[[ConsumerRecord], bool], *, n: int, timeout: float = 30.0
) -> list[ConsumerRecord]:
    """The first ``n`` records of ``topic`` (from the beginning) that ``match``; fails after ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while len(found) < n and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found.extend(r for records in batches.values() for r in records if match(r))
    finally:
        await consumer.stop()
    assert len(found) >= n, f"{len(found)} of {n} records on {topic} within {timeout} s"
    return found[:n]


def header(record: ConsumerRecord, name: str) -> bytes | None:
    return dict(record.headers).get(name)


def codecs(settings: Settings) -> tuple[AvroCodec[ArtifactEvent], AvroCodec[DeadLetter]]:
    registry = SchemaRegistry(settings.schema_registry_url)
    events: AvroCodec[ArtifactEvent] = AvroCodec(
        registry, subject=f"{events_topic(settings)}-value", schema_name="artifact_event", model=ArtifactEvent
    )
    dead: AvroCodec[DeadLetter] = AvroCodec(
        registry, subject=f"{dead_letter_topic(settings)}-value", schema_name="dead_letter", model=DeadLetter
    )
    return events, dead


class SwitchableParser:
    """Refuses everything until ``fixed`` is set, then accepts with one storage event per body."""

    def __init__(self) -> None:
        self.fixed = False

    def __call__(self, delivery: Delivery, payload: Any) -> ParseResult:
        if not self.fixed:
            raise InputError("digest: not supported yet", field="digest", code="unsupported")
        digest = "sha256:" + hashlib.sha256(delivery.body).hexdigest()
        return ParseResult(events=(storage_event(delivery, digest),))


def storage_event(delivery: Delivery, digest: str) -> ArtifactEvent:
    return ArtifactEvent(
        event_id=event_id("it", delivery.body_sha256),
        key=digest,
        kind="storage",
        source="demo",
        digest=digest,
        event_time=datetime(2026, 5, 5, 10, 11, 12, 654321, tzinfo=UTC),
        ingest_time=delivery.received_at,
        delivery_id=delivery.body_sha256[:16],
        storage=StorageBody(
            registry="demo", registry_url="https://r.example/", repository="it", tags=["1.0"], action="pushed"
        ),
    )


def kubernetes_parser(delivery: Delivery, payload: Any) -> ParseResult:
    return ParseResult(events=(storage_event(delivery, payload["digest"]),))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (publisher started and stopped), behind an in-process HTTP client."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://connectors", timeout=30) as client:
            yield client


def k8s_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {settings.secret('kubernetes_token')}",
    }


# --- tests ----------------------------------------------------------------------------------------


async def test_accepted_events_are_on_kafka_exactly_as_parsed(stack: Stack) -> None:
    settings = stack.settings
    produced: list[ArtifactEvent] = []

    def parser(delivery: Delivery, payload: Any) -> ParseResult:
        result = kubernetes_parser(delivery, payload)
        produced.extend(result.events)
        return result

    digest = "sha256:" + uuid.uuid4().hex * 2
    app = create_app(settings, parsers={"kubernetes": parser})
    async with running(app) as client:
        response = await client.post(
            "/events/kubernetes", content=json.dumps({"digest": digest}), headers=k8s_headers(settings)
        )
    assert response.status_code == 202
    (event,) = produced
    assert response.json() == {"accepted": 1, "event_ids": [event.event_id]}

    (record,) = await read_topic(settings, events_topic(settings), lambda r: r.key == digest.encode(), n=1)
    event_codec, _ = codecs(settings)
    assert event_codec.decode(record.value) == event
    assert record.value[0] == 0  # Confluent framing: magic byte, then the registry's schema id
    assert int.from_bytes(record.value[1:5], "big") == event_codec.schema_id
    assert header(record, "event_id") == event.event_id.encode()
    assert header(record, "kind") == b"storage" and header(record, "source") == b"demo"


async def test_github_delivery_through_the_real_parser_round_trips(stack: Stack) -> None:
    settings = stack.settings
    body = (PAYLOADS / "github" / "registry_package_published_single.json").read_bytes()
    secret = settings.secret("github_webhook_secret")
    assert secret is not None
    delivery_id = str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "registry_package",
        "X-GitHub-Delivery": delivery_id,
        "X-Hub-Signature-256": auth.github_signature(secret, body),
    }
    async with running(create_app(settings)) as client:
        response = await client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 202, response.text
    ids = set(response.json()["event_ids"])
    assert ids

    records = await read_topic(
        settings,
        events_topic(settings),
        lambda r: header(r, "event_id") in {i.encode() for i in ids},
        n=len(ids),
    )
    event_codec, _ = codecs(settings)
    on_kafka = sorted((event_codec.decode(r.value) for r in records), key=lambda e: e.event_id)
    # The same delivery parsed again gives exactly what Kafka holds (ingest_time is the receive time).
    again = Delivery(
        endpoint="/webhooks/github",
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
        received_at=on_kafka[0].ingest_time,
    )
    expected = parse_github(again, json.loads(body)).events
    assert on_kafka == sorted(expected, key=lambda e: e.event_id)
    keys = {event_codec.decode(r.value).event_id: r.key for r in records}
    assert all(keys[e.event_id] == e.key.encode() for e in on_kafka)  # keyed by digest


async def test_attestation_bytes_go_to_the_attestations_topic_keyed_by_sha256(stack: Stack) -> None:
    settings = stack.settings
    statement = json.loads((PAYLOADS / "attestations" / "statement_slsa_v1.json").read_text())
    statement["predicate"]["runDetails"]["metadata"]["invocationId"] += f"?nonce={uuid.uuid4().hex}"
    body = json.dumps(statement, indent=1).encode()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {settings.secret('attestations_token')}",
    }
    async with running(create_app(settings)) as client:
        response = await client.post("/events/attestations", content=body, headers=headers)
    assert response.status_code == 202, response.text
    sha = hashlib.sha256(body).hexdigest()
    (record,) = await read_topic(settings, attestations_topic(settings), lambda r: r.key == sha.encode(), n=1)
    assert record.value == body  # the original bytes, never re-serialised


async def test_malformed_input_is_dead_lettered_with_reason_and_without_authorization(stack: Stack) -> None:
    settings = stack.settings
    body = b'{"digest": "sha256:' + uuid.uuid4().hex.encode() + b'", '  # truncated
    async with running(create_app(settings)) as client:
        response = await client.post("/events/kubernetes", content=body, headers=k8s_headers(settings))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    _, dead_codec = codecs(settings)
    (record,) = await read_topic(
        settings, dead_letter_topic(settings), lambda r: dead_codec.decode(r.value).body == body, n=1
    )
    letter = dead_codec.decode(record.value)
    assert (letter.endpoint, letter.error_code, letter.stage) == (
        "/events/kubernetes",
        "invalid_json",
        "connectors",
    )
    assert letter.reason == response.json()["error"]["message"]
    assert letter.headers == {"content-type": "application/json"}
    assert record.key == letter.dead_letter_id.encode()


async def test_a_five_mib_refused_body_fits_the_dead_letter_topic(stack: Stack) -> None:
    settings = stack.settings
    body = (
        b'{"pad": "' + uuid.uuid4().hex.encode() + b"x" * (settings.max_body_bytes - 100) + b'"'
    )  # no closing }
    assert len(body) <= settings.max_body_bytes
    async with running(create_app(settings)) as client:
        response = await client.post("/events/kubernetes", content=body, headers=k8s_headers(settings))
    assert response.status_code == 400
    _, dead_codec = codecs(settings)
    key = hashlib.sha256(b"/events/kubernetes\x00" + body).hexdigest().encode()
    (record,) = await read_topic(settings, dead_letter_topic(settings), lambda r: r.key == key, n=1)
    assert dead_codec.decode(record.value).body == body


async def test_replay_resends_dead_letters_after_the_fix(stack: Stack) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    settings = stack.settings.model_copy(update={"connectors_port": free_port()})
    parser = SwitchableParser()
    app = create_app(settings, parsers={"cloudevents": parser})
    server = uvicorn.Server(uvicorn_config(settings, app))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        bodies = [json.dumps({"specversion": "1.0", "id": uuid.uuid4().hex}).encode() for _ in range(2)]
        headers = {
            "Content-Type": "application/cloudevents+json",
            "Authorization": f"Bearer {settings.secret('cloudevents_token')}",
            "ce-source": "it",
        }
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.connectors_port}") as client:
            for body in bodies:
                assert (
                    await client.post("/events/cloudevents", content=body, headers=headers)
                ).status_code == 422

        dry = await replay_async(
            settings, since=since, endpoint="/events/cloudevents", dry_run=True, echo=lambda _: None
        )
        assert dry.sent == 0 and dry.total >= 2

        parser.fixed = True  # the fix is deployed
        lines: list[str] = []
        summary = await replay_async(settings, since=since, endpoint="/events/cloudevents", echo=lines.append)
    finally:
        server.should_exit = True
        await serving
    assert summary.sent == 2 and summary.accepted == 2 and summary.failed == 0
    assert lines[-1].startswith("replay: ")
    digests = {("sha256:" + hashlib.sha256(b).hexdigest()).encode() for b in bodies}
    records = await read_topic(settings, events_topic(settings), lambda r: r.key in digests, n=2)
    assert {r.key for r in records} == digests


async def test_readyz_reports_kafka_and_registry(stack: Stack) -> None:
    async with running(create_app(stack.settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert set(response.json()["checks"]) == {"kafka", "schema_registry"}


async def test_unreachable_kafka_gives_503_fast_and_not_ready(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    app = create_app(settings, parsers={"kubernetes": kubernetes_parser})
    async with running(app) as client:
        started = time.monotonic()
        body = json.dumps({"digest": "sha256:" + "cd" * 32})
        response = await client.post("/events/kubernetes", content=body, headers=k8s_headers(settings))
        elapsed = time.monotonic() - started
        ready = await client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert elapsed < 10
    assert ready.status_code == 503
    assert ready.json()["checks"]["kafka"]["ok"] is False


async def test_publisher_times_out_instead_of_hanging(stack: Stack) -> None:
    publisher = KafkaPublisher(
        stack.settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"}),
        publish_timeout=1.0,
    )
    await publisher.start()
    try:
        started = time.monotonic()
        with pytest.raises(PublisherUnavailable):
            delivery = Delivery(endpoint="/x", headers={}, body=b"{}", received_at=datetime.now(UTC))
            await publisher.publish(
                ParseResult(events=(storage_event(delivery, "sha256:" + "ef" * 32),)), delivery
            )
        assert time.monotonic() - started < 3
    finally:
        await publisher.stop()
