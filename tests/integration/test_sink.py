"""The ClickHouse sink on a real broker and a real ClickHouse (chDB): records gathered across partitions into
one insert, offsets committed only after the insert, a replay of everything (a crash before any commit, with
other batch boundaries than the first run) adds no row (``count() = uniqExact(event_id)``), and a rebalance
inserts and commits what was gathered before the partitions go to another consumer."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from history.client import Warehouse
from linked_artifacts.events import ArtifactEvent
from pipeline.history_writer import WarehouseWriter
from pipeline.sink import ClickHouseSink, batch_token
from tests.conftest import Stack
from tests.integration.test_connectors_kafka import codecs
from tests.integration.test_stack_smoke import storage_event

pytestmark = pytest.mark.integration

PARTITIONS = 4


class RecordingWriter:
    """The real writer, with every insert's token and row count kept for the test."""

    def __init__(self, inner: WarehouseWriter) -> None:
        self.inner = inner
        self.writes: list[tuple[str, int]] = []

    def known_event_ids(self, keys: Sequence[str], event_ids: Sequence[str]) -> set[str]:
        return self.inner.known_event_ids(keys, event_ids)

    def write(self, events: Sequence[ArtifactEvent], *, dedup_token: str) -> None:
        self.inner.write(events, dedup_token=dedup_token)
        self.writes.append((dedup_token, len(events)))

    def idle(self) -> None:
        self.inner.idle()


@pytest.fixture
def warehouse(clickhouse_dsn: str) -> Iterator[Warehouse]:
    name = f"la_sink_{uuid.uuid4().hex[:10]}"
    handle = Warehouse.connect(clickhouse_dsn, database=name)
    handle.apply_migrations()
    yield handle
    handle.command(f"DROP DATABASE IF EXISTS {name}")
    handle.close()


async def _run_until(sink: ClickHouseSink, done: object, timeout: float = 60.0) -> None:
    task = asyncio.create_task(sink.run())
    deadline = time.monotonic() + timeout
    try:
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            if task.done():
                task.result()  # the sink failed: raise its error here
            await asyncio.sleep(0.1)
    finally:
        sink.stop()
        await task


def test_batch_token_lists_each_partitions_range_in_order() -> None:
    assert batch_token(["t:0:5-9"]) == "t:0:5-9"  # a single partition's batch keeps its old token
    assert batch_token(["t:0:5-9", "t:3:0-4"]) == "t:0:5-9,t:3:0-4"


async def _topic_with_events(stack: Stack, count: int) -> str:
    """A fresh topic of PARTITIONS partitions holding ``count`` events, 20 of them delivered twice, and a poison
    record."""
    settings = stack.settings
    topic = f"la.sink-test-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
    finally:
        await admin.close()
    codec, _ = codecs(settings)
    events = [storage_event("sha256:" + uuid.uuid4().hex * 2, repository=f"r{i}") for i in range(count)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, codec.encode(event), key=event.key.encode())
        # A webhook redelivered (the same event at a later offset) and a poison record.
        for event in events[:20]:
            await producer.send(topic, codec.encode(event), key=event.key.encode())
        await producer.send_and_wait(topic, b"not an avro frame", key=b"poison")
    finally:
        await producer.stop()
    return topic


def _count(warehouse: Warehouse) -> tuple[int, int]:
    row = warehouse.query("SELECT count(), uniqExact(event_id) FROM events").result_rows[0]
    return int(row[0]), int(row[1])


async def test_sink_inserts_across_partitions_commits_after_and_a_replay_adds_nothing(
    stack: Stack, warehouse: Warehouse
) -> None:
    settings = stack.settings.model_copy(update={"sink_batch_rows": 5_000, "sink_flush_seconds": 0.5})
    topic = await _topic_with_events(stack, 400)
    codec, _ = codecs(settings)

    group = f"sink-test-{uuid.uuid4().hex[:8]}"
    writer = RecordingWriter(WarehouseWriter(warehouse))
    sink = ClickHouseSink(settings, topic=topic, codec=codec, writer=writer, group_id=group)
    await _run_until(sink, lambda: sink.stats.rows >= 400 and sink.stats.poison == 1)

    assert _count(warehouse) == (400, 400)
    assert sink.stats.duplicates == 20 and sink.stats.poison == 1
    assert sum(rows for _, rows in writer.writes) == 400
    # Fewer inserts than partitions: a fetch from several partitions is one insert, and its token names
    # each partition's range in partition order.
    spanning = [token for token, _ in writer.writes if token.count(",") >= 1]
    assert spanning, f"no insert spanned partitions: {writer.writes}"
    for token, _ in writer.writes:
        parts = [piece.rsplit(":", 2) for piece in token.split(",")]
        assert all(name == topic for name, _, _ in parts)
        assert [int(p) for _, p, _ in parts] == sorted(int(p) for _, p, _ in parts)

    # Committed only what was inserted: every partition's commit is its end offset.
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    assert committed == ends

    # A crash before any commit: everything is read again, in other batches (other tokens). The event ids
    # already stored are dropped before the insert, so nothing is added.
    again = RecordingWriter(WarehouseWriter(warehouse))
    replay = ClickHouseSink(settings, topic=topic, codec=codec, writer=again, group_id=group + "-replay")
    await _run_until(replay, lambda: replay.stats.duplicates >= 420)
    assert replay.stats.rows == 0 and again.writes == []
    assert _count(warehouse) == (400, 400)


async def test_a_rebalance_inserts_and_commits_what_was_gathered_before_the_partitions_go(
    stack: Stack, warehouse: Warehouse
) -> None:
    # A flush interval far beyond the test: only the revocation can make the first sink insert.
    settings = stack.settings.model_copy(update={"sink_batch_rows": 5_000, "sink_flush_seconds": 120.0})
    topic = await _topic_with_events(stack, 300)
    codec, _ = codecs(settings)
    group = f"sink-test-{uuid.uuid4().hex[:8]}"
    first_writer = RecordingWriter(WarehouseWriter(warehouse))
    first = ClickHouseSink(settings, topic=topic, codec=codec, writer=first_writer, group_id=group)
    first_task = asyncio.create_task(first.run())
    second: ClickHouseSink | None = None
    second_task: asyncio.Task[None] | None = None
    try:
        deadline = time.monotonic() + 60
        while first.gathered_rows < 321 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert first.gathered_rows == 321 and first_writer.writes == [], "the first sink should gather, not insert yet"

        # A second consumer joins the group: the first one's partitions are revoked (some move).
        second_writer = RecordingWriter(WarehouseWriter(warehouse))
        second = ClickHouseSink(settings, topic=topic, codec=codec, writer=second_writer, group_id=group)
        second_task = asyncio.create_task(second.run())
        deadline = time.monotonic() + 60
        while not first_writer.writes and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert first_writer.writes, "the revocation did not insert what the first sink had gathered"
        assert sum(rows for _, rows in first_writer.writes) == 300
        await asyncio.sleep(3)  # the second sink reads from the commits: nothing is left for it
        assert second_writer.writes == []
        assert _count(warehouse) == (300, 300)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await first_task
        if second_task is not None:
            await second_task
