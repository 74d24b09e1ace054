"""The Faust app that joins everything by digest: the linker. `linked-artifacts worker` runs it in a process of
its own next to the process that owns ClickHouse (pipeline.service), or alone with ``--no-sink``.

Faust is a dependency behind this thin layer: it gives partition assignment, the changelog-backed state
table and its recovery. The merge is ``pipeline.merge`` (pure); batching and coalescing are
``pipeline.processor``. The guarantee is at-least-once with idempotent effects: a replayed event merges to
the same state, and the sink deduplicates by event id.

Why the table's store and changelog are written directly: Faust refuses ``table[key] = value`` outside
per-event iteration ("Cannot modify table key from outside of stream iteration"), but a batch
(``pipeline.batching``) is what lets one write per key replace one write per event. Every record of a key
arrives on the same partition of the events and derived topics, and the changelog is co-partitioned with
them, so writing the store and its changelog with the record's partition is exactly what a per-event table
write does. The changelog record is sent and awaited like every other send of the batch, not through Faust's
``send_changelog``: that puts it in Faust's producer buffer, whose flush before a commit (and on stop) gives
up after 0.1 s without a send, so a commit could cover a state the changelog never got. A worker that took
the partition over then recovered the older state (tests/fault/test_rebalance.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import faust
from aiokafka.errors import MessageSizeTooLargeError
from faust.exceptions import ProducerSendError

from linked_artifacts import bootstrap, gc_tuning, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent, DeadLetter
from linked_artifacts.partitioning import partition_for
from linked_artifacts.settings import Settings
from pipeline import batching, faust_consumer, table_manager
from pipeline.changelog import read_state, table_value
from pipeline.enriched import StateEncoder
from pipeline.offsets import HandledOffsets
from pipeline.processor import FROZEN_CODE, BatchResult, Outcome, Processor, Record, exchange, frozen_reason
from pipeline.state import LinkedArtifactState, key_role
from pipeline.state_cache import StateCache
from pipeline.state_size import StateSizes

log = logging.getLogger(__name__)

# Records per batch (settings.worker_batch_events): large enough to coalesce hot keys and amortise sends,
# small enough that a batch finishes in a few seconds, well inside the broker's poll and session timeouts.
# 5,000 against 2,000 cut state writes per event from 0.96 to 0.62 and raised the worker's CPU rate by ~27%
# (bench/worker_cpu.py). 10,000 filled within 1 s against 5,000 within 0.25 s: a replay of 50,000 events
# in 6 batches instead of 13-14, 1,604 / 2,186 -> 2,480 / 2,568 events/s (alternating runs, session 8).
# 20,000 against 10,000, with batches sized by what waits (pipeline.batching), so a larger most no longer
# delays a quiet stream: 2,326 / 2,408 / 2,860 -> 3,408 / 3,543 / 3,523 events/s (session 10). 40,000 was
# no better: fetching does not keep that many waiting, and a batch then holds ~17,000.
BATCH_MAX = Settings.model_fields["worker_batch_events"].default
# Faust's Kafka client settings for the linker (and the bench's Faust references, so only the agent body differs).
CLIENTS: dict[str, Any] = {
    "producer_acks": -1,
    # A state's record may be as large as the topics take; at Faust's 1,000,000 the client refused a larger
    # one before it left the process, and the batch that grew the state could never be sent.
    "producer_max_request_size": topics.RECORD_MAX_BYTES,
    # aiokafka fills one batch per partition and waits for the sender to take it when it is full. At Faust's
    # 16 KiB a batch held 3-5 states, so a batch's ~7,000 sends waited for the sender every few records:
    # 1.3-2.4 s per 20,000 events against 0.4-1.1 s at 512 KiB (the same run, bench/README.md).
    "producer_max_batch_size": 512 * 1024,
    # aiokafka fetches a partition again only once its last fetch was consumed. At Faust's 1 MiB a partition
    # held ~1,500 events, and a batch's 1 s window gathered ~12,500 records with the loop idle ~40% of it,
    # waiting for fetches. At 8 MiB a backlog's batches of 20,000 filled in 0.35-0.7 s: replays 3,231 / 3,711
    # -> 4,308 / 4,742 events/s (alternating runs, bench/README.md).
    "consumer_max_fetch_size": 8 * 1024 * 1024,
}
# Rounds of local derived messages per batch before the rest goes through the topic (pipeline.processor.exchange).
LOCAL_ROUNDS_MAX = 50


class SendFailed(Exception):
    """A record the linker sent was not taken: says which, and for a record too large, what to change."""

    def __init__(self, topic: str, key: bytes, size: int, cause: Exception) -> None:
        reason = cause.__cause__ if isinstance(cause, ProducerSendError) and cause.__cause__ else cause
        message = f"Kafka did not take the {size:,}-byte record of {key.decode(errors='replace')} on {topic}: {reason}"
        if isinstance(reason, MessageSizeTooLargeError) and size > topics.RECORD_MAX_BYTES:
            # No setting helps: the key's state outgrew what one record may carry.
            message += (
                f". That is more than the {topics.RECORD_MAX_BYTES:,} bytes a record may have here; the key's "
                "state has outgrown one Kafka record, and restarting folds the same batch again. Its events "
                "are on the events topic: report the key and its size"
            )
        elif isinstance(reason, MessageSizeTooLargeError):
            message += (
                f". Records of up to {topics.RECORD_MAX_BYTES:,} bytes must fit: raise the topic's "
                f"max.message.bytes (kafka-configs.sh --alter --entity-type topics --entity-name {topic} "
                f"--add-config max.message.bytes={topics.RECORD_MAX_BYTES}), and the broker's "
                "message.max.bytes if the topic has no limit of its own"
            )
        super().__init__(message)


def _partition(key: str, partitions: int) -> int:
    """Kafka's default partitioner, as every producer of these topics uses (remembered per key)."""
    return partition_for(key.encode(), partitions)


class Linker:
    """The agent's body: state lookups through a cache, writes through the table and its changelog."""

    def __init__(self, app: faust.App, settings: Settings, registry: SchemaRegistry) -> None:
        self.app = app
        self.settings = settings
        self.events_topic = topics.events_topic(settings)
        self.derived_topic_name = topics.derived_topic(settings)
        event_codec = AvroCodec(
            registry,
            subject=bootstrap.subject_for(settings, "artifact_event"),
            schema_name="artifact_event",
            model=ArtifactEvent,
        )
        self.enriched_codec = AvroCodec(
            registry,
            subject=bootstrap.subject_for(settings, "linked_artifact"),
            schema_name="linked_artifact",
            model=LinkedArtifactState,
        )
        # Splices the bytes of unchanged records: the same bytes as enriched_codec.encode, much cheaper.
        self.enriched_encoder = StateEncoder(self.enriched_codec)
        self.dead_codec = AvroCodec(
            registry,
            subject=bootstrap.subject_for(settings, "dead_letter"),
            schema_name="dead_letter",
            model=DeadLetter,
        )
        self.processor = Processor(
            events_topic=self.events_topic, derived_topic=self.derived_topic_name, codec=event_codec
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "key_serializer": "raw",
            "value_serializer": "raw",
        }
        # The consumed topics hand their raw records to the stream without Faust's decode (faust_consumer).
        self.source = app.topic(self.events_topic, self.derived_topic_name, schema=faust_consumer.RawRecords())
        self.derived = app.topic(self.derived_topic_name, schema=faust_consumer.RawRecords())
        self.enriched_topic_name = topics.enriched_topic(settings)
        self.enriched = app.topic(self.enriched_topic_name, **raw)
        self.dead = app.topic(topics.dead_letter_topic(settings), **raw)
        self.table = app.Table(
            "linked-state",
            default=None,
            partitions=settings.topic_partitions,
            key_type=bytes,
            value_type=bytes,
            # A broker's own default is 1 MB; a state may be as large as the other topics' records.
            extra_topic_configs={"max.message.bytes": str(topics.RECORD_MAX_BYTES)},
        )
        # Raw bytes in and out of the changelog (the value is the state's enriched Avro record or its JSON,
        # pipeline.changelog); set before the changelog topic is first built, so recovery reads raw bytes too.
        table: Any = self.table  # the serializer attributes are on the implementation, not on TableT
        table.key_serializer = "raw"
        table.value_serializer = "raw"
        self.changelog_topic_name: str = table.changelog_topic.get_topic_name()
        self.cache = StateCache(settings.worker_state_cache_states)
        self.sizes = StateSizes(limit=settings.worker_state_max_bytes)  # warns of a state nearing the most
        # Keys whose outgoing effects were re-sent since this worker got its partitions (see handle()).
        self.refreshed: set[str] = set()
        self.assigned: set[tuple[str, int]] = set()
        self.processed = 0
        self.published = 0
        self.applied_locally = 0
        self.derived_sent = 0
        self._pending: list[tuple[Awaitable[Any], str, bytes, int]] = []  # deliveries, and what each one sent
        # Who wrote a record, and in which batch: the header ``la-origin`` on everything the linker sends, so
        # a record on the changelog or the enriched topic can be traced to the worker and batch behind it.
        self.origin = f"{socket.gethostname()}:{os.getpid()}"
        self.batches = 0
        self.last_written = 0  # states the last batch wrote
        self._headers: list[tuple[str, bytes]] = []
        self.offsets = HandledOffsets((self.events_topic, self.derived_topic_name))
        # A batch's survivors are frozen out of the collector's scans (linked_artifacts.gc_tuning).
        self.collections = gc_tuning.BatchCollections(interval=settings.worker_gc_full_seconds)

    def fail(self, exc: Exception) -> NoReturn:
        """A batch failed (a send Kafka refused, a bug): end the process with exit code 1, at once.

        Faust would log the agent's crash and keep the process up, serving and healthy, with nothing linked
        any more. Its graceful stop would wait for the failed batch's records to be acknowledged, which they
        never are. An abrupt end is what at-least-once is built for (tests/fault kill workers mid-batch): the
        batch's offsets are not committed, so the next start folds it again."""
        log.critical(
            "the linker stops: batch %d failed (%s: %s). Its offsets are not committed, so the next start "
            "folds it again; the traceback follows",
            self.batches,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    def lookup(self, key: str) -> LinkedArtifactState | None:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        data = self.table.data.get(key.encode())
        if data is None:
            return None
        state = read_state(data, self.enriched_codec)
        self.cache.remember(key, state)
        return state

    def forget(self) -> None:
        """On rebalance: another worker may own (and change) a key we cached."""
        self.cache.clear()
        self.refreshed.clear()

    def local_partition(self, key: str) -> int | None:
        """The partition of ``key`` when this worker owns it (its events, derived messages and state), else
        None. Kafka's default partitioner, as every producer of these topics uses."""
        partition = _partition(key, self.settings.topic_partitions)
        owned = {(self.derived_topic_name, partition), (self.events_topic, partition)} <= self.assigned
        return partition if owned else None

    async def handle(self, records: list[Record]) -> BatchResult:
        """Fold a batch, then the derived messages it sends to keys this worker owns, until none are left;
        then write each changed state once, publish each changed digest once, and send the rest.

        A message to a key owned here is applied at once instead of a round trip through the derived topic
        (it would come back to this very worker): one consume and one produce fewer per message, and the
        state it changes is written and published once with the batch's other changes. Crash safety is
        unchanged: everything is sent before Faust commits the batch's offsets, and a replay re-sends what a
        touched key stands behind (``_exchange``).
        """
        self.batches += 1
        self._headers = [("la-origin", f"{self.origin}/{self.batches}".encode())]
        while True:
            batch = self.processor.process(records, self.lookup)
            outcome = self._exchange(batch)
            published = {
                key: (partition, self.enriched_encoder.encode(state))
                for key, (partition, state) in outcome.touched.items()
                if key_role(key) == "digest" and (key in outcome.changed or key in outcome.fresh)
            }
            values: dict[str, tuple[int, bytes]] = {}
            for key, (partition, state) in outcome.changed.items():
                # A digest's table value is its enriched record, encoded once for both (pipeline.changelog).
                enriched = published.get(key)
                values[key] = (partition, table_value(state, enriched=enriched[1] if enriched else None))
            too_large = {key: len(data) for key, (_, data) in values.items()
                         if len(data) > self.settings.worker_state_max_bytes}
            if not too_large:
                break
            # Past the cap (at the default, Kafka would refuse the record, at every start): the key keeps its
            # last state, and the batch is folded again with its records set aside. Nothing was written yet;
            # what the fold cached and the keys it refreshed are undone (cached states are read again from the
            # table). Each round freezes at least one more key, so this ends.
            self._freeze(too_large)
            self.cache.clear()
            self.refreshed -= outcome.fresh  # exactly the keys this fold marked (no copy on every batch)
            self.applied_locally -= outcome.applied_locally
        self.last_written = len(outcome.changed)
        for key, (partition, data) in values.items():
            self.sizes.written(key, len(data))
            self.table.data[key.encode()] = data
            await self._send(self.changelog_topic_name, key.encode(), data, partition=partition)
        # Every state the batch changed is in the table now, so the cache may drop what it holds beyond its bound.
        self.cache.trim()
        for key, (partition, data) in published.items():
            # The enriched topic is co-partitioned with the events (bootstrap checks it): the key's partition
            # is the one aiokafka's pure-Python murmur2 would compute again for every record.
            await self._send(self.enriched_topic_name, key.encode(), data, partition=partition)
        self.published += len(published)
        for message in outcome.remote:
            await self._send(self.derived_topic_name, message.target_key.encode(), message.model_dump_json().encode())
        self.derived_sent += len(outcome.remote)
        # Every send of the batch acknowledged before the next batch (Faust commits offsets later still):
        # a failed send raises here instead of being lost with an unobserved future.
        sent, self._pending = self._pending, []
        for delivery, topic, record_key, size in sent:
            # In send order, so this suspends about once per produce batch; ``asyncio.gather`` over thousands
            # of futures cost ~5% of a replay in callbacks (py-spy). ``await`` raises a failed send's error.
            try:
                await delivery
            except Exception as exc:
                raise SendFailed(topic, record_key, size, exc) from exc
        letters = [
            DeadLetter(
                dead_letter_id=f"{poison.record.topic}:{poison.record.partition}:{poison.record.offset}",
                stage="worker",
                endpoint=poison.record.topic,
                reason=poison.reason,
                error_code=poison.code,
                body=poison.record.value,
                received_at=datetime.now(tz=UTC),
            )
            for poison in batch.poison
        ]
        letters += [
            DeadLetter(
                # A message applied here never had an offset: named by what it carries instead.
                dead_letter_id=f"{self.derived_topic_name}:{message.origin_key}:{message.origin_version}"
                f"->{message.target_key}",
                stage="worker",
                endpoint=self.derived_topic_name,
                reason=frozen_reason(message.target_key),
                error_code=FROZEN_CODE,
                body=message.model_dump_json().encode(),
                received_at=datetime.now(tz=UTC),
            )
            for message in outcome.refused
        ]
        for letter in letters:
            await self.dead.send(
                key=letter.dead_letter_id.encode(), value=self.dead_codec.encode(letter), headers=self._headers
            )
        self.processed += len(records)
        return batch

    def _freeze(self, too_large: dict[str, int]) -> None:
        for key, size in too_large.items():
            log.error(
                "the state of %s would be %s bytes, more than worker_state_max_bytes (%s): the key keeps its last "
                "state and takes nothing more in this process; its events and the facts other keys send it go to "
                "the dead-letter topic (error_code %s), and its events stay in the history. Look at what keeps "
                "sending events for this key (SELECT source, kind, count() FROM events WHERE key = '%s' GROUP BY "
                "ALL)",
                key, f"{size:,}", f"{self.settings.worker_state_max_bytes:,}", FROZEN_CODE, key,
            )
        self.processor.frozen.update(too_large)

    async def _send(self, topic: str, key: bytes, value: bytes, *, partition: int | None = None) -> None:
        """Straight to the producer: Faust's ``Topic.send`` wraps each record in futures, callbacks and a
        codec lookup (~8% of the worker in a profile) that raw bytes do not need. ``handle`` awaits every
        send's delivery before it returns, so before the batch's offsets can be acknowledged."""
        try:
            delivery = await self.app.producer.send(
                topic, key, value, partition=partition, timestamp=None, headers=self._headers
            )
        except Exception as exc:  # refused by the client itself, before anything left the process
            raise SendFailed(topic, key, len(value), exc) from exc
        self._pending.append((delivery, topic, key, len(value)))

    def _exchange(self, batch: BatchResult) -> Outcome:
        def remember(key: str, state: LinkedArtifactState) -> None:
            self.cache.remember(key, state)

        outcome = exchange(
            self.processor,
            batch,
            self.lookup,
            remember=remember,
            refreshed=self.refreshed,
            local_partition=self.local_partition,
            max_rounds=LOCAL_ROUNDS_MAX,
        )
        self.applied_locally += outcome.applied_locally
        return outcome


def create_app(
    settings: Settings,
    *,
    api: Literal["query", "linker"] | None = "query",
    api_port: int | None = None,
) -> tuple[faust.App, Linker]:
    """The Faust app and its linker. ``api`` serves the query API on ``query_port`` (a worker started with
    ``--no-sink``: no ClickHouse), or the linker's own endpoint for the worker service that started this
    process (pipeline.linker_process) on 127.0.0.1:``api_port``."""
    host, port = (settings.http_host, settings.query_port) if api != "linker" else ("127.0.0.1", api_port)
    data_dir = settings.data_dir / "faust"
    data_dir.mkdir(parents=True, exist_ok=True)
    # faust_consumer.App: Faust with a cheaper hand-over of fetched records to the stream (see there).
    app = faust_consumer.App(
        settings.worker_id,
        broker=f"kafka://{settings.kafka_servers}",
        store="memory://",
        datadir=str(data_dir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        **CLIENTS,
        broker_commit_interval=1.0,
        # Faust's prefetch per stream bounds a batch: it must hold more than one batch, or a backlog is
        # folded in batches of its default 4,096 records however large worker_batch_events is.
        stream_buffer_maxsize=max(4_096, 2 * settings.worker_batch_events),
        web_enabled=api is not None,
        web_host=host,
        web_port=port,
        web_in_thread=False,
        Stream=batching.Stream,
        # Without Faust's fixed second of sleep before the tables register and the consumer subscribes.
        TableManager=table_manager.TableManager,
    )
    registry = SchemaRegistry(settings.schema_registry_url)
    linker = Linker(app, settings, registry)

    @app.agent(linker.source, name="linker")
    async def link(stream: Any) -> None:
        # Batches as large as what waits (pipeline.batching): a backlog in full batches, a quiet stream at once.
        batches = stream.take_backlog(
            settings.worker_batch_events,
            window=settings.worker_batch_seconds,
            check=settings.worker_batch_check_seconds,
            behind=batching.broker_behind(app.consumer),
        )
        async for events in batches:
            records = [
                Record(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events
            ]
            started = time.perf_counter()
            try:
                with linker.collections.batch():
                    result = await linker.handle(records)
            except Exception as exc:
                linker.fail(exc)
            log.debug(
                "batch %d: %d records (%d events, %d derived), %d states written, %.0f ms",
                linker.batches,
                len(records),
                result.events,
                result.derived_in,
                linker.last_written,
                (time.perf_counter() - started) * 1000,
            )
            # Only now may the batch's acknowledgements mark it done (pipeline.offsets).
            linker.offsets.handled(records)

    @app.timer(1.0)
    async def refetch_dropped() -> None:
        # Records the stream dropped around a rebalance are fetched again (pipeline.offsets).
        active = app.flow_control.is_active() and not app.rebalancing
        await linker.offsets.refetch(app.consumer, active=active)

    @app.on_partitions_revoked.connect
    def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        linker.forget()
        linker.assigned -= {(tp.topic, tp.partition) for tp in (args[0] if args else ())}

    @app.on_partitions_assigned.connect
    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        linker.offsets.install(app.consumer)
        linker.forget()
        linker.assigned = {(tp.topic, tp.partition) for tp in (args[0] if args else ())}
        log.info("assigned partitions: %s", sorted(p for t, p in linker.assigned if t == linker.events_topic))

    if api is not None:
        from faust.contrib.asgi import serve_asgi

        from pipeline.query_api import create_linker_api, create_query_api

        asgi = (
            create_linker_api(settings, linker)
            if api == "linker"
            else create_query_api(settings, warehouse=None, linker=linker)
        )
        serve_asgi(app, asgi, host=host, port=port, log_level="warning")
    return app, linker


def run(settings: Settings, *, with_sink: bool = True, with_api: bool = True) -> None:
    """`linked-artifacts worker`: with the sink, the worker service (pipeline.service) that runs the linker
    in a child process; without it (a second worker on embedded chDB), the linker itself, in this process."""
    bootstrap.bootstrap(settings)
    if with_sink:
        from pipeline.service import serve

        gc_tuning.tune_for_service()
        sys.exit(asyncio.run(serve(settings, with_api=with_api)))
    run_faust(settings, api="query" if with_api else None)


def run_faust(settings: Settings, *, api: Literal["query", "linker"] | None, api_port: int | None = None) -> None:
    app, _ = create_app(settings, api=api, api_port=api_port)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    gc_tuning.tune_for_service()
    worker.execute_from_commandline()
