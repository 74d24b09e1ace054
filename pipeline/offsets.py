"""Offsets that Faust commits only for records the agent really handled: at-least-once through rebalances
and stops.

Faust marks a record done (its offset committable) when the stream acknowledges it, and the stream also
acknowledges records it never hands to the agent:

- ``take_events`` acknowledges the whole batch when the agent's loop body ends, also when it ends by an
  exception or by cancellation (a SIGTERM stops the agent mid-batch);
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
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Offset = tuple[str, int, int]  # topic, partition, offset


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
        self.held_back = 0  # acknowledgements of records not handled (they stay uncommitted)
        self.rewound = 0  # partitions rewound to their start after a rebalance

    def handled(self, records: Iterable[HandledRecord]) -> None:
        """The agent is done with these records: their acknowledgements may reach the consumer."""
        self._handled.update((r.topic, r.partition, r.offset) for r in records)

    def install(self, consumer: Any) -> None:
        """Wrap the Faust consumer's ``ack`` and ``seek_to_committed`` (once; later calls do nothing)."""
        if getattr(consumer, "_la_handled_offsets", None) is self:
            return
        ack, seek_to_committed = consumer.ack, consumer.seek_to_committed

        def guarded_ack(message: Any) -> bool:
            key = (message.topic, message.partition, message.offset)
            if message.topic in self.topics and key not in self._handled:
                self.held_back += 1
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
                    await consumer.seek(tp, earliest or 0)
            return committed

        consumer.ack = guarded_ack
        consumer.seek_to_committed = rewinding_seek_to_committed
        consumer._la_handled_offsets = self
