"""Getting accepted input into Kafka: the ``EventPublisher`` seam and its aiokafka implementation.

Contract of every publisher:

- ``start()`` is called once before the first request and must not fail because Kafka is down: the
  service comes up, answers 503 and starts accepting as soon as Kafka is back.
- ``publish()`` / ``publish_dead_letter()`` return only after the broker acknowledged every record
  (acks=all). Otherwise they raise ``PublisherUnavailable`` (retriable: the sender gets 503 and resends)
  or ``InputError`` (the records themselves cannot be written, e.g. too large: a 4xx).
  A failed call may still have stored some records; redeliveries carry the same event ids and are
  deduplicated downstream, so "503 then retry" never loses or doubles anything.
- ``stop()`` flushes what is in flight and closes connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from pydantic import BaseModel

from connectors.base import Delivery, InputError, ParseResult
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import ArtifactEvent, DeadLetter
from linked_artifacts.partitioning import remembering_partitioner
from linked_artifacts.settings import Settings
from linked_artifacts.topics import RECORD_MAX_BYTES, attestations_topic, dead_letter_topic, events_topic

log = logging.getLogger(__name__)

# GitHub counts a delivery failed after 10 s. Parsing takes milliseconds, so 8 s for Kafka to acknowledge
# leaves room for the network and the answer; past it the sender gets 503 and redelivers.
PUBLISH_TIMEOUT_S = 8.0
# After a failed connect, answer 503 at once for this long instead of letting every request wait for its
# own connect attempt: Kafka being down must not turn into a pile of stalled requests.
RECONNECT_BACKOFF_S = 1.0
# Readiness probes must answer fast; a probe that waits as long as a request would be useless.
HEALTH_TIMEOUT_S = 2.0
# Closing a discarded producer flushes what it holds; bounded so a dead broker cannot stall shutdown.
CLOSE_TIMEOUT_S = 10.0
# Retry-After on 503: long enough for a broker restart to finish, short enough to catch up soon.
RETRY_AFTER_S = 10
# As large as the topics take (a 5 MiB body plus framing fits in one record).
MAX_REQUEST_BYTES = RECORD_MAX_BYTES
# A few ms lets concurrent requests share a produce request without a latency anyone notices.
LINGER_MS = 5
REGISTRY_TIMEOUT_S = 3.0


class PublisherUnavailable(LinkedArtifactsError):
    """Kafka or the schema registry did not acknowledge in time: answer 503 with Retry-After."""

    code = "unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(message, status=503)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ComponentHealth:
    ok: bool
    detail: str


class EventPublisher(Protocol):
    """Where the HTTP edge puts what it accepted. See the module docstring for the failure semantics."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, result: ParseResult, delivery: Delivery) -> None:
        """Write ``result.events`` and ``result.attestations``; return after the broker acknowledged all."""
        ...

    async def publish_dead_letter(self, record: DeadLetter) -> None:
        """Write one dead letter; return after the broker acknowledged it."""
        ...

    async def health(self) -> dict[str, ComponentHealth]:
        """Reachability of each dependency, answered within about HEALTH_TIMEOUT_S."""
        ...


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _sender_dead(producer: AIOKafkaProducer) -> bool:
    # aiokafka fails every later send once its sender task has died (e.g. OutOfOrderSequenceNumber after a
    # broker restart) and never restarts it, so a dead sender means: build a new producer.
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task is not None and task.done()


class KafkaPublisher:
    """Avro (Confluent framing, TopicNameStrategy) to the events topic, raw attestation bytes to the
    attestations topic, dead letters to the dead-letter topic, through one idempotent producer.

    The producer is replaced whenever a send fails or times out, or its sender task has died: aiokafka
    reconnects by itself after a broker restart in most cases, but not from every state (Jepsen's advice
    is to re-initialise producers after indefinite errors), and a fresh producer costs one bootstrap.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: SchemaRegistry | None = None,
        publish_timeout: float = PUBLISH_TIMEOUT_S,
        producer_factory: Callable[[], AIOKafkaProducer] | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry or SchemaRegistry(settings.schema_registry_url, timeout=REGISTRY_TIMEOUT_S)
        self._own_registry = registry is None
        self._events_topic = events_topic(settings)
        self._dead_letter_topic = dead_letter_topic(settings)
        self._attestations_topic = attestations_topic(settings)
        self._event_codec: AvroCodec[ArtifactEvent] = AvroCodec(
            self._registry,
            subject=f"{self._events_topic}-value",
            schema_name="artifact_event",
            model=ArtifactEvent,
        )
        self._dead_letter_codec: AvroCodec[DeadLetter] = AvroCodec(
            self._registry,
            subject=f"{self._dead_letter_topic}-value",
            schema_name="dead_letter",
            model=DeadLetter,
        )
        self._schema_ids_ready = False
        self._timeout = publish_timeout
        self._factory = producer_factory or self._new_producer
        self._producer: AIOKafkaProducer | None = None
        self._generation = 0
        self._lock = asyncio.Lock()
        self._last_failure: tuple[float, str] | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_servers,
            client_id=f"linked-artifacts-connectors-{os.getpid()}",
            enable_idempotence=True,
            acks="all",
            linger_ms=LINGER_MS,
            max_request_size=MAX_REQUEST_BYTES,
            # Batches expire with our own deadline, so a send never outlives the request that made it by long.
            request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000),
            retry_backoff_ms=100,
            partitioner=remembering_partitioner,
        )

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._ensure_schema_ids()
                await self._ensure_producer()
        except (PublisherUnavailable, TimeoutError) as exc:
            log.warning(
                "connectors start without Kafka/registry (%s); answering 503 until they are back", exc
            )

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._close(producer, "service stopping")
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._own_registry:
            self._registry.close()

    # --- publishing ------------------------------------------------------------------------------
    async def publish(self, result: ParseResult, delivery: Delivery) -> None:
        async with self._deadline("publish"):
            await self._ensure_schema_ids()
            records = [self._attestation_record(raw) for raw in result.attestations]
            records += [self._event_record(event) for event in result.events]
            await self._send_all(records)

    async def publish_dead_letter(self, record: DeadLetter) -> None:
        async with self._deadline("dead letter"):
            await self._ensure_schema_ids()
            value = self._encode(self._dead_letter_codec, record, "dead letter")
            headers = [
                ("dead_letter_id", record.dead_letter_id.encode()),
                ("error_code", record.error_code.encode()),
            ]
            await self._send_all(
                [OutgoingRecord(self._dead_letter_topic, record.dead_letter_id.encode(), value, headers)]
            )

    def _event_record(self, event: ArtifactEvent) -> OutgoingRecord:
        headers = [
            ("event_id", event.event_id.encode()),
            ("kind", event.kind.encode()),
            ("source", event.source.encode()),
        ]
        value = self._encode(self._event_codec, event, f"event {event.event_id}")
        return OutgoingRecord(self._events_topic, event.key.encode("utf-8"), value, headers)

    def _attestation_record(self, raw: bytes) -> OutgoingRecord:
        digest = hashlib.sha256(raw).hexdigest()
        return OutgoingRecord(self._attestations_topic, digest.encode(), raw, [("sha256", digest.encode())])

    @staticmethod
    def _encode(codec: AvroCodec[Any], record: BaseModel, what: str) -> bytes:
        try:
            return codec.encode(record)
        except Exception as exc:  # fastavro raises ValueError, TypeError, struct.error, OverflowError...
            # The parser built a record Avro cannot hold (e.g. an integer beyond 64 bits): the input's fault.
            raise InputError(
                f"{what} cannot be encoded as Avro: {exc}", status=422, code="unencodable_event"
            ) from exc

    async def _send_all(self, records: Sequence[OutgoingRecord]) -> None:
        if not records:
            return
        producer, generation = await self._ensure_producer()
        try:
            futures = [await producer.send(r.topic, r.value, key=r.key, headers=r.headers) for r in records]
            # asyncio.wait, unlike gather, leaves the futures alone when our deadline cancels the wait.
            await asyncio.wait(futures)
            for future in futures:
                future.result()
        except MessageSizeTooLargeError as exc:
            raise InputError(
                f"a record exceeds Kafka's size limit: {exc}", field="body", status=413, code="too_large"
            ) from exc
        except asyncio.CancelledError:
            self._discard(generation, "no acknowledgement before the publish deadline")
            raise
        except Exception as exc:
            self._discard(generation, f"send failed: {exc!r}")
            raise

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str) -> AsyncIterator[None]:
        # The producer that timed out was already discarded where the wait was cancelled (_send_all).
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError:
            raise PublisherUnavailable(
                f"{what}: Kafka at {self._settings.kafka_servers} "
                f"did not acknowledge within {self._timeout:g} s"
            ) from None
        except (InputError, PublisherUnavailable):
            raise
        except Exception as exc:
            raise PublisherUnavailable(
                f"Kafka at {self._settings.kafka_servers} is unavailable: {exc}"
            ) from exc

    # --- the producer's life ---------------------------------------------------------------------
    async def _ensure_schema_ids(self) -> None:
        if self._schema_ids_ready:
            return
        # The registry client is synchronous: keep it off the event loop.
        try:
            await asyncio.to_thread(self._resolve_schema_ids)
        except LinkedArtifactsError as exc:
            raise PublisherUnavailable(f"schema registry unavailable: {exc.message}") from exc
        self._schema_ids_ready = True

    def _resolve_schema_ids(self) -> None:
        _ = self._event_codec.schema_id, self._dead_letter_codec.schema_id

    async def _ensure_producer(self) -> tuple[AIOKafkaProducer, int]:
        producer = self._producer
        if producer is not None and not _sender_dead(producer):
            return producer, self._generation
        async with self._lock:
            if self._producer is not None and _sender_dead(self._producer):
                self._discard(self._generation, "sender task died")
            if self._producer is None:
                self._producer = await self._connect()
                self._generation += 1
            return self._producer, self._generation

    async def _connect(self) -> AIOKafkaProducer:
        servers = self._settings.kafka_servers
        if self._last_failure is not None:
            failed_at, why = self._last_failure
            if time.monotonic() - failed_at < RECONNECT_BACKOFF_S:
                raise PublisherUnavailable(f"Kafka at {servers} is unreachable: {why}")
        producer = self._factory()
        try:
            await producer.start()
        except (Exception, asyncio.CancelledError) as exc:
            self._last_failure = (time.monotonic(), repr(exc))
            self._close_later(producer, "start failed")
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise PublisherUnavailable(f"Kafka at {servers} is unreachable: {exc}") from exc
        if self._last_failure is not None:
            log.info("Kafka at %s is reachable again; new producer started", servers)
        self._last_failure = None
        return producer

    def _discard(self, generation: int, why: str) -> None:
        """Drop the current producer if it is still the one that failed; the next request makes a new one."""
        if generation != self._generation or self._producer is None:
            return
        producer, self._producer = self._producer, None
        log.warning("discarding Kafka producer (generation %d): %s", generation, why)
        self._close_later(producer, why)

    def _close_later(self, producer: AIOKafkaProducer, why: str) -> None:
        task = asyncio.get_running_loop().create_task(self._close(producer, why))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close(producer: AIOKafkaProducer, why: str) -> None:
        try:
            await asyncio.wait_for(producer.stop(), CLOSE_TIMEOUT_S)
        except (Exception, asyncio.CancelledError) as exc:
            log.warning("Kafka producer did not close cleanly after %s: %r", why, exc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.client.close(), 1.0)

    # --- readiness -------------------------------------------------------------------------------
    async def health(self) -> dict[str, ComponentHealth]:
        kafka, registry = await asyncio.gather(self._kafka_health(), self._registry_health())
        return {"kafka": kafka, "schema_registry": registry}

    async def _kafka_health(self) -> ComponentHealth:
        servers = self._settings.kafka_servers
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                producer, _ = await self._ensure_producer()
                metadata = await producer.client.fetch_all_metadata()
        except TimeoutError:
            return ComponentHealth(False, f"Kafka at {servers}: no metadata within {HEALTH_TIMEOUT_S:g} s")
        except Exception as exc:
            return ComponentHealth(False, f"Kafka at {servers}: {exc}")
        missing = [t for t in (self._events_topic, self._dead_letter_topic) if t not in metadata.topics()]
        if missing:
            return ComponentHealth(False, f"Kafka at {servers}: topics missing: {', '.join(missing)}")
        return ComponentHealth(True, f"Kafka at {servers}: {len(metadata.brokers())} broker(s)")

    async def _registry_health(self) -> ComponentHealth:
        url = self._registry.url
        try:
            async with httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S) as client:
                response = await client.get(f"{url}/subjects")
        except httpx.HTTPError as exc:
            return ComponentHealth(False, f"schema registry at {url}: {exc!r}")
        if response.status_code != 200:
            return ComponentHealth(False, f"schema registry at {url} answered {response.status_code}")
        return ComponentHealth(True, f"schema registry at {url}")
