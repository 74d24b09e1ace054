"""KafkaPublisher's own logic with a fake producer and registry: what it sends, and how it replaces a producer
that failed, hung or died. The real broker is in tests/integration and tests/fault."""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from connectors import publisher as publisher_module
from connectors.base import Delivery, InputError, ParseResult
from connectors.deadletter import build_dead_letter
from connectors.publisher import KafkaPublisher, PublisherUnavailable
from linked_artifacts import avro_schema
from linked_artifacts.avro import RegistryError, SchemaRegistry
from linked_artifacts.events import ArtifactEvent, StorageBody
from tests.unit.connectors.fakes import DIGEST, make_settings

NOW = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
DELIVERY = Delivery(endpoint="/events/kubernetes", headers={}, body=b"{}", received_at=NOW)


class FakeRegistry(SchemaRegistry):
    def __init__(self, *, fail: bool = False) -> None:
        super().__init__("http://127.0.0.1:1")  # nothing listens: health checks fail at once
        self.fail = fail

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        if self.fail:
            raise RegistryError("registry down (test)")
        return 7 if subject.endswith("artifact-events-value") else 8


class FakeProducer:
    """Acknowledges sends unless told to hang, fail or refuse size; records what it was given."""

    def __init__(self, *, start_error: Exception | None = None, hang: bool = False) -> None:
        self.start_error = start_error
        self.hang = hang
        self.send_error: Exception | None = None
        self.sent: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        self.stopped = False
        self._sender = type("Sender", (), {"sender_task": None})()

    async def start(self) -> None:
        if self.start_error is not None:
            raise self.start_error

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append((topic, key, value, headers))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.hang:
            future.set_result(None)
        return future


class Factory:
    def __init__(self, *producers: FakeProducer) -> None:
        self.queue = list(producers)
        self.made: list[FakeProducer] = []

    def __call__(self) -> FakeProducer:
        producer = self.queue.pop(0) if self.queue else FakeProducer()
        self.made.append(producer)
        return producer


def event(**storage: Any) -> ArtifactEvent:
    return ArtifactEvent(
        event_id="e-1",
        key=DIGEST,
        kind="storage",
        source="demo",
        digest=DIGEST,
        event_time=NOW,
        ingest_time=NOW,
        delivery_id="d-1",
        storage=StorageBody(
            registry="demo", registry_url="https://r/", repository="r", action="pushed", **storage
        ),
    )


def make(factory: Factory, *, registry: FakeRegistry | None = None, timeout: float = 0.3) -> KafkaPublisher:
    return KafkaPublisher(
        make_settings(),
        registry=registry or FakeRegistry(),
        publish_timeout=timeout,
        producer_factory=factory,
    )


async def settle() -> None:
    for _ in range(5):  # let background closes run
        await asyncio.sleep(0)


async def test_publish_sends_framed_events_and_raw_attestations() -> None:
    factory = Factory()
    publisher = make(factory)
    await publisher.publish(ParseResult(events=(event(),), attestations=(b'{"_type": 1}',)), DELIVERY)
    (producer,) = factory.made
    (att_topic, att_key, att_value, _), (topic, key, value, headers) = producer.sent
    assert (att_topic, att_value) == ("la.attestations", b'{"_type": 1}')
    assert att_key == hashlib.sha256(b'{"_type": 1}').hexdigest().encode()
    assert (topic, key) == ("la.artifact-events", DIGEST.encode())
    assert dict(headers) == {"event_id": b"e-1", "kind": b"storage", "source": b"demo"}
    assert value[:5] == b"\x00\x00\x00\x00\x07"  # magic byte + schema id 7
    schema = fastavro.parse_schema(avro_schema.load("artifact_event"))
    decoded = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
    assert ArtifactEvent.model_validate(decoded) == event()


async def test_dead_letters_are_keyed_by_their_id() -> None:
    factory = Factory()
    publisher = make(factory)
    record = build_dead_letter(
        endpoint="/x",
        body=b"{",
        reason="r",
        error_code="invalid_json",
        headers={},
        received_at=NOW,
        artifactory_auth_mode="hmac-sha256",
    )
    await publisher.publish_dead_letter(record)
    ((topic, key, value, headers),) = factory.made[0].sent
    assert (topic, key) == ("la.dead-letter", record.dead_letter_id.encode())
    assert value[:5] == b"\x00\x00\x00\x00\x08"
    assert dict(headers)["error_code"] == b"invalid_json"


async def test_a_send_without_acknowledgement_times_out_and_the_producer_is_replaced() -> None:
    hung = FakeProducer(hang=True)
    factory = Factory(hung)
    publisher = make(factory)
    with pytest.raises(PublisherUnavailable, match="did not acknowledge"):
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    await settle()
    assert hung.stopped
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert len(factory.made) == 2 and len(factory.made[1].sent) == 1


async def test_a_failed_send_replaces_the_producer() -> None:
    broken = FakeProducer()
    broken.send_error = KafkaConnectionError("broker gone")
    factory = Factory(broken)
    publisher = make(factory)
    with pytest.raises(PublisherUnavailable, match="broker gone"):
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert len(factory.made) == 2


async def test_a_dead_sender_task_is_noticed_and_the_producer_replaced() -> None:
    factory = Factory()
    publisher = make(factory)
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    dead: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dead.set_result(None)
    factory.made[0]._sender.sender_task = dead
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert len(factory.made) == 2


async def test_unreachable_kafka_fails_fast_within_the_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publisher_module, "RECONNECT_BACKOFF_S", 0.2)
    factory = Factory(FakeProducer(start_error=KafkaConnectionError("refused")))
    publisher = make(factory)
    with pytest.raises(PublisherUnavailable, match="unreachable"):
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    with pytest.raises(PublisherUnavailable, match="unreachable"):
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert len(factory.made) == 1  # the second call did not try to connect again
    await asyncio.sleep(0.25)
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)  # Kafka is back
    assert len(factory.made) == 2


async def test_start_does_not_fail_when_kafka_is_down() -> None:
    publisher = make(Factory(FakeProducer(start_error=KafkaConnectionError("refused"))))
    await publisher.start()
    health = await publisher.health()
    assert not health["kafka"].ok and not health["schema_registry"].ok


async def test_a_record_too_large_for_kafka_is_413_and_keeps_the_producer() -> None:
    producer = FakeProducer()
    producer.send_error = MessageSizeTooLargeError("too big")
    factory = Factory(producer)
    publisher = make(factory)
    with pytest.raises(InputError) as info:
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert (info.value.status, info.value.code) == (413, "too_large")
    producer.send_error = None
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    assert len(factory.made) == 1


async def test_an_event_avro_cannot_hold_is_422_and_nothing_is_sent() -> None:
    factory = Factory()
    publisher = make(factory)
    with pytest.raises(InputError) as info:
        await publisher.publish(ParseResult(events=(event(), event(size=2**70))), DELIVERY)
    assert (info.value.status, info.value.code) == (422, "unencodable_event")
    assert all(not p.sent for p in factory.made)


async def test_registry_down_before_the_schema_ids_are_known_is_unavailable() -> None:
    publisher = make(Factory(), registry=FakeRegistry(fail=True))
    with pytest.raises(PublisherUnavailable, match="schema registry"):
        await publisher.publish(ParseResult(events=(event(),)), DELIVERY)


async def test_stop_closes_the_producer() -> None:
    factory = Factory()
    publisher = make(factory)
    await publisher.publish(ParseResult(events=(event(),)), DELIVERY)
    await publisher.stop()
    assert factory.made[0].stopped
