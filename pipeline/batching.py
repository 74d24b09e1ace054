"""Batches as large as the backlog: the worker's stream hands over what is waiting, up to a most.

Faust's ``take_events(max_, within)`` fills a batch for up to ``within`` seconds after the previous one was
handled, moving records from the stream's buffer one by one. So ``within`` is two things at once: the
latency every record on a quiet stream waits for, and a cap on the batch when a backlog waits (what the
stream moves within that time). A larger batch costs less per event (hot keys are written and published
once per batch), but a longer window delays a quiet stream by as much.

``Stream.take_backlog`` decides by what is waiting instead. Every ``check`` seconds it looks at the stream's
buffer and at the broker's end of each partition the batch read from (the highwater of the last fetch).
While records wait in the buffer, the batch goes on filling, up to ``most`` records: they are already here,
and moving them takes microseconds each. While records wait only at the broker, it goes on filling for up
to ``window`` seconds after its first record. Once none wait, the batch is handed over. So a backlog is
folded in batches of ``most``, a quiet stream waits ``check`` seconds at most instead of ``window``, and a
busy one (new records keep arriving) fills a batch for up to ``window``.

The window does not cut a batch while records wait in the buffer. It did at first, and a linker that
started on a backlog folded a first batch of 270 records while 27,100 waited: Faust's fetch loop had held
the event loop for over a second, handing the first fetch's records to the buffer, so the batch's window
ran out before the stream could move them. Each such batch writes and publishes its keys once more.

The buffer alone is not enough: it runs empty for a moment whenever the stream gets ahead of a fetch.
Replays of 50,000 events were then cut into 3, 4 or 5 batches, and took 13.1, 18.5 and 19.1 s of CPU in one
run: every batch writes and publishes each key it touched.

Acknowledgements are ``take_events``': the stream's own acks are off, and a batch's records are acked once
the caller's loop body for it has ended (``pipeline.offsets`` passes on only those the agent handled).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import faust
from faust.types import TP, EventT
from mode.utils.locks import Event

# Whether the broker holds records past the given next offsets (partition -> offset after the last record
# read), on partitions still assigned.
Behind = Callable[[Mapping[TP, int]], bool]


def broker_behind(consumer: Any) -> Behind:
    """``Behind`` from a Faust consumer's highwaters: the end offsets its last fetch responses reported."""

    def behind(read_to: Mapping[TP, int]) -> bool:
        for tp, next_offset in read_to.items():
            try:
                highwater = consumer.highwater(tp)
            except (AssertionError, KeyError):  # aiokafka's answer for a partition no longer assigned
                continue
            if highwater is not None and highwater > next_offset:
                return True
        return False

    return behind


def _nothing_behind(read_to: Mapping[TP, int]) -> bool:
    return False


class Stream(faust.Stream[Any]):
    """``faust.Stream`` with ``take_backlog``; installed with ``faust.App(Stream=...)``."""

    def take_backlog(
        self, most: int, *, window: float, check: float, behind: Behind = _nothing_behind
    ) -> AsyncGenerator[list[EventT[Any]], None]:
        """Batches of up to ``most`` records; ``behind`` says whether more are on their way from the broker."""
        batches = self._take_backlog(most, window=window, check=check, behind=behind)
        # As Faust does for take(): the stream closes generators left open when it stops.
        self._active_agens.add(batches)
        return batches

    async def _take_backlog(
        self, most: int, *, window: float, check: float, behind: Behind
    ) -> AsyncGenerator[list[EventT[Any]], None]:
        events: list[EventT[Any]] = []
        read_to: dict[TP, int] = {}  # partition -> the offset after the last record gathered
        first_at = 0.0  # monotonic time the batch's first record was gathered
        # mode's events: what the stream's waits (Service.wait, wait_for_stopped) are typed for.
        full = Event()
        # Set while the stream may add records: clear while a batch is full or being handled, so that a
        # record taken out of the buffer meanwhile waits for the next batch.
        room = Event()
        room.set()
        channel: Any = self.channel  # a topic's iterating channel, whose queue the conductor fills
        waiting = channel.queue  # the records fetched for this stream and not yet moved into a batch

        async def gather(value: Any) -> Any:
            nonlocal first_at
            if not room.is_set():
                await self.wait(room)
            event = self.current_event
            if event is None:
                raise RuntimeError("a stream processor ran without a current event")
            if not events:
                first_at = time.monotonic()
            events.append(event)
            message = event.message
            read_to[message.tp] = message.offset + 1
            if len(events) >= most:
                room.clear()
                full.set()
            return value

        acks = self.enable_acks
        self.enable_acks = False
        self.add_processor(gather)
        # Faust's own buffering (take_events) runs the stream in the background the same way: each record
        # passes through ``gather`` as the stream moves it out of its buffer.
        self._enable_passive(aiter(channel))
        try:
            while not self.should_stop:
                await self.wait_for_stopped(full, timeout=check)
                if not events:
                    continue
                if not full.is_set():
                    if not waiting.empty():
                        continue  # records wait here: take them, up to most
                    if time.monotonic() - first_at < window and behind(read_to):
                        continue  # records wait at the broker: keep filling, within the window
                room.clear()
                batch = list(events)
                try:
                    yield batch
                finally:
                    events.clear()
                    for event in batch:
                        await self.ack(event)
                    full.clear()
                    room.set()
        finally:
            self.enable_acks = acks
            self._processors.remove(gather)
