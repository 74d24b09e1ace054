"""HandledOffsets: only records the agent handled reach Faust's offset bookkeeping, and a rebalance's seek
rewinds the agent's partitions that have no committed offset. The Faust consumer is a stand-in with the two
methods wrapped; the fault tests (tests/fault/test_rebalance.py, test_worker_crashes.py) run the real one."""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from faust.types import TP

from pipeline.offsets import REFETCH_GRACE_S, REFETCH_STALL_S, HandledOffsets, next_commit
from pipeline.processor import Record


class Message(NamedTuple):
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    def __init__(self, committed: dict[TP, int | None], positions: dict[TP, int]) -> None:
        self.committed = committed
        self.positions = positions
        self.acked: list[Message] = []
        self.seeks: dict[TP, int] = {}
        self._unacked_messages: set[Message] = set()
        self.gaps: list[tuple[TP, int, int]] = []
        self._committed_offset: dict[TP, int | None] = {}
        self._acked: dict[TP, list[int]] = {}
        self._acked_index: dict[TP, set[int]] = {}
        self.assigned: set[TP] = set()

    def assignment(self) -> set[TP]:
        return self.assigned

    def highwater(self, tp: TP) -> int | None:
        return self.positions.get(tp)

    def _new_offset(self, tp: TP) -> int | None:
        return -1  # Faust's own choice, kept for topics that are not the agent's

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        self.gaps.append((tp, offset_from, offset_to))

    def ack(self, message: Message) -> bool:
        self.acked.append(message)
        self._unacked_messages.discard(message)
        return True

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks[tp] = offset


def _installed(consumer: FakeConsumer) -> tuple[HandledOffsets, Any]:
    offsets = HandledOffsets(["la.artifact-events", "la.derived"])
    offsets.install(consumer)
    offsets.install(consumer)  # a second assignment does not wrap twice
    return offsets, consumer


def test_an_acknowledgement_reaches_the_consumer_only_after_the_agent_handled_the_record() -> None:
    offsets, consumer = _installed(FakeConsumer({}, {}))
    handled = Message("la.artifact-events", 0, 7)
    dropped = Message("la.artifact-events", 0, 8)  # skipped by the stream in a rebalance, or a cancelled batch
    consumer._unacked_messages.update({handled, dropped})
    offsets.handled([Record(handled.topic, handled.partition, handled.offset, None, b"")])

    assert consumer.ack(handled) is True
    assert consumer.ack(dropped) is False
    assert consumer.acked == [handled]
    assert offsets.held_back == 1
    assert not consumer._unacked_messages  # a rebalance does not wait for the dropped one
    # A second acknowledgement of the same offset (a stale copy) is held back too.
    assert consumer.ack(handled) is False
    assert consumer.acked == [handled]


def test_records_of_other_topics_are_acknowledged_as_before() -> None:
    _, consumer = _installed(FakeConsumer({}, {}))
    other = Message("worker-linked-state-changelog", 1, 3)
    assert consumer.ack(other) is True
    assert consumer.acked == [other]


def test_the_seek_after_a_rebalance_rewinds_only_the_agents_partitions_without_a_committed_offset() -> None:
    events_0, events_1 = TP("la.artifact-events", 0), TP("la.artifact-events", 1)
    derived_0, changelog_0 = TP("la.derived", 0), TP("worker-linked-state-changelog", 0)
    consumer = FakeConsumer(
        {events_0: 120, events_1: None, derived_0: 0, changelog_0: None},
        {events_0: 150, events_1: 40, derived_0: 283, changelog_0: 900},
    )
    offsets, _ = _installed(consumer)

    committed = asyncio.run(consumer.seek_to_committed())

    assert committed[events_0] == 120  # Faust gets aiokafka's answer unchanged
    assert consumer.seeks == {events_1: 0, derived_0: 0}  # never the changelog: recovery owns its position
    assert offsets.rewound == 2


def test_offset_jumps_in_the_agents_topics_are_not_counted_as_acknowledged() -> None:
    offsets, consumer = _installed(FakeConsumer({}, {}))
    events, changelog = TP("la.artifact-events", 0), TP("worker-linked-state-changelog", 0)
    asyncio.run(consumer._add_gap(events, 165, 253))  # records still in flight from before a seek
    asyncio.run(consumer._add_gap(changelog, 10, 20))  # not ours: Faust's handling stays
    assert consumer.gaps == [(changelog, 10, 20)]
    assert offsets.gaps_ignored == 1


def test_a_commit_never_passes_the_next_record_to_read_while_it_is_not_handled() -> None:
    # Faust committed over offset 158 here (it accepted a run starting one past the committed position).
    acked, index = [159, 160, 161], {159, 160, 161}
    assert next_commit(acked, index, 158, None) is None
    acked.append(158)
    index.add(158)
    assert next_commit(acked, index, 158, None) == 162
    assert acked == [] and index == set()


def test_the_commit_is_the_end_of_the_run_from_the_committed_position() -> None:
    acked = [5, 3, 4, 4, 8, 2]  # unordered, a duplicate, an offset already committed, a hole at 6-7
    index = set(acked)
    assert next_commit(acked, index, 3, None) == 6
    assert acked == [8] and index == {2, 8}
    assert next_commit(acked, index, 6, None) is None  # 6 and 7 are not handled yet


def test_a_partition_without_a_committed_offset_commits_from_where_it_was_rewound() -> None:
    acked, index = [1, 2], {1, 2}
    assert next_commit(acked, index, None, None) is None  # no origin known: commit nothing
    assert next_commit(acked, index, None, 0) is None  # offset 0 is not handled yet
    acked.insert(0, 0)
    assert next_commit(acked, index, None, 0) == 3


def test_the_wrapped_consumer_uses_the_strict_commit_for_the_agents_topics_only() -> None:
    events, changelog = TP("la.artifact-events", 0), TP("worker-linked-state-changelog", 0)
    consumer = FakeConsumer({events: None}, {events: 9})
    _installed(consumer)
    asyncio.run(consumer.seek_to_committed())  # rewinds events[0] to 0: its origin
    consumer._committed_offset[events] = None
    consumer._acked[events], consumer._acked_index[events] = [0, 1, 3], {0, 1, 3}
    assert consumer._new_offset(events) == 2
    assert consumer._new_offset(changelog) == -1


EVENTS_0 = TP("la.artifact-events", 0)


def _refetch(offsets: HandledOffsets, consumer: FakeConsumer, *, at: float, active: bool = True) -> dict[TP, int]:
    consumer.seeks.clear()
    seeks = asyncio.run(offsets.refetch(consumer, active=active, now=at))
    assert seeks == consumer.seeks
    return seeks


def test_a_record_the_stream_dropped_is_fetched_again_from_the_first_unhandled_one() -> None:
    # The fault test's case: records 224-348 of a partition reached the stream after the rebalance's seek,
    # were dropped, and the worker went on from 349 while the commit stuck at 224.
    offsets, consumer = _installed(FakeConsumer({}, {}))
    consumer.assigned = {EVENTS_0, TP("worker-linked-state-changelog", 0)}
    consumer._committed_offset[EVENTS_0] = 224
    assert consumer.ack(Message("la.artifact-events", 0, 230)) is False  # dropped

    assert _refetch(offsets, consumer, at=100.0, active=False) == {}  # not while a rebalance is under way
    assert _refetch(offsets, consumer, at=100.5) == {EVENTS_0: 224}  # from the first unhandled record
    assert offsets.refetched == 1
    assert _refetch(offsets, consumer, at=101.5) == {}  # once


def test_handled_records_past_an_unhandled_one_seek_back_after_the_grace_period() -> None:
    # A record dropped without an acknowledgement (Faust drops a re-fetched record below its read offset).
    offsets, consumer = _installed(FakeConsumer({}, {}))
    consumer.assigned = {EVENTS_0}
    consumer._committed_offset[EVENTS_0] = 50
    consumer._acked[EVENTS_0], consumer._acked_index[EVENTS_0] = [51, 52], {51, 52}

    assert _refetch(offsets, consumer, at=10.0) == {}
    assert _refetch(offsets, consumer, at=10.0 + REFETCH_GRACE_S / 2) == {}  # records may still be on their way
    assert _refetch(offsets, consumer, at=10.0 + REFETCH_GRACE_S) == {EVENTS_0: 50}
    # Right after a seek, records fetched earlier still arrive first: no second seek within the grace period.
    assert _refetch(offsets, consumer, at=11.0 + REFETCH_GRACE_S) == {}
    consumer.ack(Message("la.artifact-events", 0, 53))
    assert _refetch(offsets, consumer, at=12.0 + REFETCH_GRACE_S) == {}


def test_nothing_is_fetched_again_when_the_first_unhandled_record_is_handled_or_in_order() -> None:
    offsets, consumer = _installed(FakeConsumer({}, {}))
    consumer.assigned = {EVENTS_0}
    consumer._committed_offset[EVENTS_0] = 50
    # Records in order, none handled past the first: a batch on its way, not a drop.
    assert _refetch(offsets, consumer, at=0.0) == {}
    assert _refetch(offsets, consumer, at=60.0) == {}
    # The first record handled: the next commit moves on.
    consumer._acked[EVENTS_0], consumer._acked_index[EVENTS_0] = [50, 52], {50, 52}
    assert _refetch(offsets, consumer, at=120.0) == {}
    # A stale second acknowledgement of a handled record (held back) is not a drop: no seek at once.
    consumer._acked[EVENTS_0], consumer._acked_index[EVENTS_0] = [52], {52}
    offsets.handled([Record("la.artifact-events", 0, 52, None, b"")])
    assert consumer.ack(Message("la.artifact-events", 0, 52)) is True
    assert consumer.ack(Message("la.artifact-events", 0, 52)) is False
    assert _refetch(offsets, consumer, at=180.0) == {}
    # A partition of another worker, or without a known position: nothing to do.
    consumer.assigned = set()
    consumer.ack(Message("la.artifact-events", 0, 70))
    assert _refetch(offsets, consumer, at=240.0) == {}


def test_the_commit_lag_counts_the_records_past_the_committed_position_per_partition() -> None:
    derived_1, changelog_0 = TP("la.derived", 1), TP("worker-linked-state-changelog", 0)
    consumer = FakeConsumer({}, {EVENTS_0: 513, derived_1: 40, changelog_0: 900})
    offsets, _ = _installed(consumer)
    consumer.assigned = {EVENTS_0, derived_1, changelog_0, TP("la.derived", 2)}  # derived[2]: no highwater yet
    consumer._committed_offset[EVENTS_0] = 224  # stuck, as in the fault test's failure
    assert offsets.commit_lag(consumer) == {EVENTS_0: 289, derived_1: 40}


def test_a_commit_that_stays_behind_the_partitions_end_seeks_back_after_the_stall_wait() -> None:
    # The last record of a partition dropped without an acknowledgement: nothing after it shows the gap.
    offsets, consumer = _installed(FakeConsumer({}, {EVENTS_0: 61}))
    consumer.assigned = {EVENTS_0}
    consumer._committed_offset[EVENTS_0] = 60
    assert _refetch(offsets, consumer, at=0.0) == {}
    assert _refetch(offsets, consumer, at=REFETCH_STALL_S - 1) == {}  # may still be in Faust's buffers
    assert _refetch(offsets, consumer, at=REFETCH_STALL_S) == {EVENTS_0: 60}
    # A commit that moves is not stuck, however long the partition stays behind its end.
    consumer.positions[EVENTS_0] = 500
    for step in range(1, 5):
        consumer._committed_offset[EVENTS_0] = 60 + step * 10
        assert _refetch(offsets, consumer, at=REFETCH_STALL_S * (1 + step)) == {}


def test_a_partition_idle_at_its_end_is_not_stuck_when_a_record_arrives() -> None:
    offsets, consumer = _installed(FakeConsumer({}, {EVENTS_0: 201}))
    consumer.assigned = {EVENTS_0}
    consumer._committed_offset[EVENTS_0] = 201  # everything handled and committed
    for minute in range(10):
        assert _refetch(offsets, consumer, at=60.0 * minute) == {}
    consumer.positions[EVENTS_0] = 204  # three records arrive; the agent gets to them within seconds
    assert _refetch(offsets, consumer, at=600.5) == {}
    assert _refetch(offsets, consumer, at=600.0 + REFETCH_STALL_S - 1) == {}
    assert _refetch(offsets, consumer, at=600.0 + REFETCH_STALL_S + 1) == {EVENTS_0: 201}  # still never handled
