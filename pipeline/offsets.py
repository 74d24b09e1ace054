"""Offsets that Faust commits only for records the agent really handled: at-least-once through rebalances
and stops.

Faust marks a record done (its offset committable) when the stream acknowledges it, and the stream also
acknowledges records it never hands to the agent:

- a batch (Faust's ``take_events``, and ``pipeline.batching`` the same way) is acknowledged whole when the
  agent's loop body ends, also when it ends by an exception or by cancellation (a SIGTERM stops the agent
  mid-batch);
- records fetched while flow control is suspended (a rebalance, a stop) or under an older consumer
  generation are dropped, and acknowledged, on their way into the stream.

A committed offset past a record that was not handled loses it for good: the next owner starts after it.
The fault tests saw both: a worker stopped during a rebalance lost whole events, and a slot missed the
derived messages sent to it while its partition moved.

``HandledOffsets`` keeps Faust's offset bookkeeping and filters what reaches it: the agent names the
records it has handled, and an acknowledgement of any other record is not passed on, so the record stays
uncommitted and is fetched again (by this worker after the rebalance's seek, or by the next owner).

One more gap is aiokafka's: after a rebalance Faust seeks every partition back to its committed offset to
fetch the dropped records again, but a partition without a committed offset (or at 0) is left where the
fetcher got to. ``install`` makes that seek rewind such partitions of the agent's topics to their start:
nothing in them is committed, so nothing in them is known to be handled.

And one is Faust's "gaps": when a fetched offset is more than one past the last one read (which happens
with records still in flight from before a rebalance's seek), Faust records the offsets in between as
acknowledged, for compacted or transactional topics whose offsets really have holes. Ours have none (plain
retention, no transactions), so a "gap" there is records not handled yet: counting them as done could
commit past them, and adding them next to their real acknowledgements put duplicates in Faust's list,
after which its commits advanced one offset per commit. ``install`` ignores gaps on the agent's topics.

Holding a record back keeps it uncommitted, but does not by itself fetch it again: a record dropped after
the rebalance's seek (fetched under the new assignment but reaching the stream before flow control resumed)
leaves the fetch position past it. The commit then sticks at that record while the partition goes on: a
fault test lost 125 events of one partition this way, and a restart would have replayed them. ``refetch``,
run every second by the worker, seeks such a partition back to its first unhandled record: at once for a
record the stream dropped, after a grace period when later records of the partition were handled before
it (Faust can also drop re-fetched records silently, as already read), and after a longer wait when the
partition has records past its commit and none of them gets handled (such a record dropped last).
Seeking back re-delivers what follows too; the merge is idempotent, so that costs time, not correctness.

Last, Faust's choice of the offset to commit is off by one: it accepts acknowledged offsets that start one
past the committed position, so a record missing right there (dropped in a rebalance, never handled) was
committed over and lost: a fault test lost exactly such a record. ``install`` computes it strictly: the
run of handled offsets that starts at the committed position (the next record to read), or nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Final, Protocol

from faust.types import TP

log = logging.getLogger(__name__)

Offset = tuple[str, int, int]  # topic, partition, offset
# How long records after a partition's first unhandled one may be handled before it, before ``refetch``
# seeks back; and the least time between two seeks of one partition. Right after a seek, records that were
# already fetched past the target still arrive first, so a shorter wait would seek again for nothing.
REFETCH_GRACE_S: Final = 5.0
# How long a partition's commit may stay at a record while the partition has records past it and none past
# it is handled, before ``refetch`` seeks back: a record dropped last, with nothing after it to show the
# gap. Far longer than a record waits in Faust's buffers behind other partitions' batches (seconds).
REFETCH_STALL_S: Final = 3 * REFETCH_GRACE_S


class HandledRecord(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


class HandledOffsets:
    """Which consumed records the agent has handled; the consumer's ack passes only those on."""

    def __init__(self, topics: Iterable[str]) -> None:
        self.topics = frozenset(topics)
        self._handled: set[Offset] = set()
        # Where a partition without a committed offset was rewound to: its first record to commit.
        self._starts: dict[Any, int] = {}
        self.held_back = 0  # acknowledgements of records not handled (they stay uncommitted)
        self.rewound = 0  # partitions rewound to their start after a rebalance
        self.gaps_ignored = 0  # offset jumps Faust would have counted as acknowledged (see install)
        self.refetched = 0  # seeks back to a partition's first unhandled record (see refetch)
        # The lowest offset per partition that the stream acknowledged without the agent handling it.
        self._dropped: dict[TP, int] = {}
        # Per partition: the committed position (first unhandled offset) last seen, and since when.
        self._stuck: dict[TP, tuple[int, float]] = {}
        self._last_seek: dict[TP, float] = {}

    def handled(self, records: Iterable[HandledRecord]) -> None:
        """The agent is done with these records: their acknowledgements may reach the consumer."""
        self._handled.update((r.topic, r.partition, r.offset) for r in records)

    def install(self, consumer: Any) -> None:
        """Wrap the Faust consumer's ``ack``, ``seek_to_committed``, ``_add_gap`` and ``_new_offset`` for the
        agent's topics (once; later calls do nothing). The last two are private to Faust (checked on
        faust-streaming 0.15.3): tests/unit/pipeline/test_offsets.py pins what the wrappers do, and the
        fault tests show that together they hold."""
        if getattr(consumer, "_la_handled_offsets", None) is self:
            return
        ack, seek_to_committed, add_gap = consumer.ack, consumer.seek_to_committed, consumer._add_gap
        new_offset = consumer._new_offset

        def guarded_ack(message: Any) -> bool:
            key = (message.topic, message.partition, message.offset)
            if message.topic in self.topics and key not in self._handled:
                self.held_back += 1
                tp = TP(message.topic, message.partition)
                self._dropped[tp] = min(message.offset, self._dropped.get(tp, message.offset))
                # Not done, and not in flight either (else a rebalance would wait for it forever).
                consumer._unacked_messages.discard(message)
                return False
            self._handled.discard(key)
            return bool(ack(message))

        async def rewinding_seek_to_committed() -> Any:
            committed = await seek_to_committed()
            # Only the agent's topics: the table's changelog partitions are assigned to the same consumer,
            # and moving those would replay old states over the table.
            bare = [tp for tp, at in committed.items() if tp.topic in self.topics and (at is None or at <= 0)]
            if bare:
                positions = {tp: await consumer.position(tp) for tp in bare}
                moved = {f"{tp.topic}[{tp.partition}]": at for tp, at in positions.items() if at}
                if moved:
                    log.info("rewinding partitions without a committed offset to their start (were at %s)", moved)
                    self.rewound += len(moved)
                for tp, earliest in (await consumer.earliest_offsets(*bare)).items():
                    self._starts[tp] = earliest or 0
                    await consumer.seek(tp, earliest or 0)
            return committed

        async def add_gap_elsewhere(tp: Any, offset_from: int, offset_to: int) -> None:
            if tp.topic in self.topics:
                self.gaps_ignored += 1
                return
            await add_gap(tp, offset_from, offset_to)

        def strict_new_offset(tp: Any) -> int | None:
            if tp.topic not in self.topics:
                return new_offset(tp)  # type: ignore[no-any-return]
            committed = consumer._committed_offset[tp]
            return next_commit(consumer._acked[tp], consumer._acked_index[tp], committed, self._starts.get(tp))

        consumer.ack = guarded_ack
        consumer._new_offset = strict_new_offset
        consumer._add_gap = add_gap_elsewhere
        consumer.seek_to_committed = rewinding_seek_to_committed
        consumer._la_handled_offsets = self

    def _origin(self, consumer: Any, tp: TP) -> int | None:
        """The partition's committed position (its next record to handle), or where it was rewound to."""
        committed: int | None = consumer._committed_offset.get(tp)
        return committed if committed is not None else self._starts.get(tp)

    def commit_lag(self, consumer: Any) -> dict[TP, int]:
        """Records past the committed position of each assigned partition of the agent's topics: one that
        grows while records arrive is a partition falling behind; one that stays up while the partition is
        quiet, a commit that is stuck (what ``refetch`` repairs)."""
        try:
            assigned = consumer.assignment()
        except Exception:  # noqa: BLE001 - not started yet, or stopping: nothing to report
            return {}
        lag: dict[TP, int] = {}
        for tp in assigned:
            if tp.topic not in self.topics:
                continue
            high = consumer.highwater(tp)
            if high is not None:
                lag[tp] = max(0, high - (self._origin(consumer, tp) or 0))
        return lag

    async def refetch(self, consumer: Any, *, active: bool, now: float | None = None) -> dict[TP, int]:
        """Seek each of the agent's assigned partitions back to its first unhandled record when that record
        was dropped (see the module docstring); returns the seeks made. ``active``: flow control is on and no
        rebalance is under way (a rebalance's own seek comes first, and records dropped meanwhile are seen
        again afterwards)."""
        if not active:
            return {}
        now = time.monotonic() if now is None else now
        seeks: dict[TP, int] = {}
        dropped, self._dropped = self._dropped, {}
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            origin = self._origin(consumer, tp)
            acked = consumer._acked.get(tp) or []
            index = consumer._acked_index.get(tp) or set()
            if origin is None or origin in index:
                self._stuck.pop(tp, None)
                continue  # nothing known yet, or the next commit moves on
            handled_past = any(offset > origin for offset in acked)
            high = consumer.highwater(tp)
            behind = high is not None and high > origin
            if not (behind or handled_past or tp in dropped):
                # The clock runs only while records wait past the commit: a partition idle at its end for an
                # hour is not stuck when a record arrives (a CI run saw exactly that false seek).
                self._stuck.pop(tp, None)
                continue
            stuck_at, since = self._stuck.get(tp, (origin, now))
            if stuck_at != origin:
                since = now
            self._stuck[tp] = (origin, since)
            if now - self._last_seek.get(tp, -REFETCH_GRACE_S) < REFETCH_GRACE_S:
                if tp in dropped:
                    self._dropped[tp] = dropped[tp]  # too soon after the last seek: next time
                continue
            was_dropped = dropped.get(tp, -1) >= origin and dropped[tp] not in index
            waited = now - since
            if was_dropped or (handled_past and waited >= REFETCH_GRACE_S) or (behind and waited >= REFETCH_STALL_S):
                log.warning(
                    "re-fetching %s[%d] from offset %d: records from there were dropped by the stream "
                    "(around a rebalance) and never handled",
                    tp.topic,
                    tp.partition,
                    origin,
                )
                await consumer.seek(tp, origin)
                seeks[tp] = origin
                self._last_seek[tp] = now
                self._stuck.pop(tp, None)
                self.refetched += 1
        return seeks


def next_commit(acked: list[int], index: set[int], committed: int | None, start: int | None) -> int | None:
    """The offset to commit for one partition, or None: the end of the run of acknowledged offsets that
    begins at the committed position (``committed``, the next record to read; ``start`` when the partition
    has none). Offsets of that run leave ``acked`` and ``index``; offsets before it are dropped as done."""
    origin = committed if committed is not None else start
    if not acked or origin is None:
        return None
    done = sorted({offset for offset in acked if offset >= origin})
    acked[:] = done
    if not done or done[0] != origin:
        return None  # the next record to read is not handled yet
    end = 1
    while end < len(done) and done[end] == origin + end:
        end += 1
    del acked[:end]
    index.difference_update(range(origin, origin + end))
    return origin + end
