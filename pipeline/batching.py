"""Batches as large as the backlog: the worker's stream hands over what is waiting, up to a most.

Faust's ``take_events(max_, within)`` fills a batch for up to ``within`` seconds after the previous one was
handled, moving records from the stream's buffer one by one. So ``within`` is two things at once: the
latency every record on a quiet stream waits for, and a cap on the batch when a backlog waits (what the
stream moves within that time). A larger batch costs less per event (hot keys are written and published
once per batch), but a longer window delays a quiet stream by as much.

``Stream.take_backlog`` decides by what is waiting instead. Every ``check`` seconds it looks at the stream's
buffer: while records wait there, the batch goes on filling, up to ``most`` records or ``window`` seconds
after its first record; once none wait, the batch is handed over. A backlog is therefore folded in batches
of ``most``, and a quiet stream waits ``check`` seconds at most instead of ``window``. Under a steady load
a batch holds what arrived while the previous one was handled, so batches grow as the worker falls behind
and shrink as it catches up.

Acknowledgements are ``take_events``': the stream's own acks are off, and a batch's records are acked once
the caller's loop body for it has ended (``pipeline.offsets`` passes on only those the agent handled).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import faust
from faust.types import EventT
from mode.utils.locks import Event


class Stream(faust.Stream[Any]):
    """``faust.Stream`` with ``take_backlog``; installed with ``faust.App(Stream=...)``."""

    def take_backlog(self, most: int, *, window: float, check: float) -> AsyncGenerator[list[EventT[Any]], None]:
        batches = self._take_backlog(most, window=window, check=check)
        # As Faust does for take(): the stream closes generators left open when it stops.
        self._active_agens.add(batches)
        return batches

    async def _take_backlog(
        self, most: int, *, window: float, check: float
    ) -> AsyncGenerator[list[EventT[Any]], None]:
        events: list[EventT[Any]] = []
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
                if not (full.is_set() or waiting.empty() or time.monotonic() - first_at >= window):
                    continue  # records still wait in the buffer: keep filling
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
