"""The ClickHouse sink: canonical events from Kafka into the event history table, exactly once.

Contract (the order is the guarantee):
1. gather records from every partition until ``sink_batch_rows`` or until ``sink_flush_seconds`` passed
   since the first: one insert for all of them, because each insert costs ClickHouse a part and its
   materialized views a pass (~80 ms in chDB whatever its size); inserts per partition and per fetch made
   two to four times as many. A rebalance flushes what was gathered before the partitions go (the
   revocation waits for it), so no other consumer reads records this one has yet to insert;
2. drop events whose ``event_id`` is already in ClickHouse (a webhook redelivered to another offset, or the
   replay of a batch that was inserted just before a crash);
3. insert the rest with ``insert_deduplication_token = "<topic>:<partition>:<first>-<last>[,...]"`` (each
   partition's offset range), so a retried insert of the same ranges adds nothing even if step 2 raced
   with it;
4. commit each partition's offset ``last + 1`` only after ClickHouse acknowledged the insert.
A crash anywhere between consume and commit leads to a re-read of the same offsets: step 2 makes the
re-insert a no-op, so ``count() = uniqExact(event_id)`` holds. ClickHouse calls block, so they run in a
worker thread and never stall the event loop or the consumer's heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import ConsumerRecord

from linked_artifacts.avro import AvroCodec, DecodeError
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings

log = logging.getLogger(__name__)


class HistoryWriter(Protocol):
    """Where the sink writes. Implementations block; the sink calls them from a thread."""

    def known_event_ids(self, keys: Sequence[str], event_ids: Sequence[str]) -> set[str]:
        """The subset of ``event_ids`` (of events with these keys) already stored."""

    def write(self, events: Sequence[ArtifactEvent], *, dedup_token: str) -> None:
        """Insert the events as one block. Must be safe to repeat with the same token."""

    def idle(self) -> None:
        """A poll found nothing to write: time for upkeep a write deferred."""


@dataclass
class SinkStats:
    batches: int = 0
    rows: int = 0
    duplicates: int = 0
    poison: int = 0
    last_flush: float = 0.0


class ClickHouseSink:
    def __init__(
        self,
        settings: Settings,
        *,
        topic: str,
        codec: AvroCodec[ArtifactEvent],
        writer: HistoryWriter,
        group_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.codec = codec
        self.writer = writer
        self.group_id = group_id or f"{settings.worker_id}-clickhouse-sink"
        self.stats = SinkStats()
        self._stopping = asyncio.Event()
        self.consumer: AIOKafkaConsumer | None = None
        # Records gathered for the next insert, and when the first of them arrived.
        self._pending: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = {}
        self._pending_rows = 0
        self._pending_since = 0.0
        # A flush from the loop and one from a revocation never overlap.
        self._flushing = asyncio.Lock()

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # A whole batch of 8 MiB records must fit; ClickHouse inserts can take seconds under load.
            max_partition_fetch_bytes=16 * 1024 * 1024,
            max_poll_interval_ms=300_000,
            isolation_level="read_committed",
        )
        self.consumer.subscribe([self.topic], listener=_FlushBeforeRevoke(self))
        await self.consumer.start()
        limit = self.settings.sink_batch_rows
        wait = self.settings.sink_flush_seconds
        try:
            while not self._stopping.is_set():
                left = wait if not self._pending else max(0.0, self._pending_since + wait - time.monotonic())
                batch = await self.consumer.getmany(
                    timeout_ms=int(left * 1000), max_records=max(1, limit - self._pending_rows)
                )
                fetched = False
                for tp, records in batch.items():
                    if records:
                        if not self._pending:
                            self._pending_since = time.monotonic()
                        self._pending.setdefault(tp, []).extend(records)
                        self._pending_rows += len(records)
                        fetched = True
                if self._pending and (
                    self._pending_rows >= limit or time.monotonic() >= self._pending_since + wait
                ):
                    await self.flush_pending()
                elif not fetched and not self._pending:
                    await asyncio.to_thread(self.writer.idle)
        finally:
            # Whatever is still gathered is not committed: it is read again after a restart.
            await self.consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    @property
    def gathered_rows(self) -> int:
        """Records gathered for the next insert (``la_sink_gathered_rows``)."""
        return self._pending_rows

    async def flush_pending(self) -> None:
        """Insert and commit what was gathered (the loop when a batch is full or due; a revocation)."""
        async with self._flushing:
            pending, self._pending, self._pending_rows = self._pending, {}, 0
            if pending:
                await self._flush(pending)

    async def _flush(self, fetched: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        if self.consumer is None:
            raise RuntimeError("the sink's consumer is not running")
        events: list[ArtifactEvent] = []
        ranges: list[str] = []
        for tp in sorted(fetched, key=lambda tp: (tp.topic, tp.partition)):
            records = fetched[tp]
            ranges.append(f"{tp.topic}:{tp.partition}:{records[0].offset}-{records[-1].offset}")
            for record in records:
                try:
                    events.append(self.codec.decode(record.value or b""))
                except DecodeError as exc:
                    # The Faust worker dead-letters poison records; the sink only skips them.
                    self.stats.poison += 1
                    log.warning(
                        "sink skips undecodable record %s[%d]@%d: %s", tp.topic, tp.partition, record.offset, exc
                    )
        token = batch_token(ranges)
        unique = list({e.event_id: e for e in events}.values())
        known = await asyncio.to_thread(
            self.writer.known_event_ids, sorted({e.key for e in unique}), [e.event_id for e in unique]
        )
        fresh = [e for e in unique if e.event_id not in known]
        self.stats.duplicates += len(events) - len(fresh)
        started = time.monotonic()
        if fresh:
            await asyncio.to_thread(self.writer.write, fresh, dedup_token=token)
        await self.consumer.commit({tp: records[-1].offset + 1 for tp, records in fetched.items()})
        self.stats.batches += 1
        self.stats.rows += len(fresh)
        self.stats.last_flush = time.time()
        log.debug(
            "sink %s: %d rows (%d duplicates) in %.3fs",
            token,
            len(fresh),
            len(events) - len(fresh),
            time.monotonic() - started,
        )


class _FlushBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Inserts and commits what was gathered while the commit is still accepted; the rebalance waits for
    it. Always through the lock, even with nothing gathered: an insert the loop has under way must commit
    before the partitions go, or the next owner could read (and insert) the same records meanwhile."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.sink.flush_pending()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return None


def batch_token(ranges: Sequence[str]) -> str:
    """The insert's deduplication token: each partition's ``<topic>:<partition>:<first>-<last>``, in
    partition order. One range keeps the token a single partition's batch always had."""
    return ",".join(ranges)
