"""Faust's Kafka consumer with a cheaper hand-over of each fetched record to the streams.

Faust's fetch loop hands every record to the conductor through ``Service.wait_first(callback(message),
suspend_flow.wait())``, so that a rebalance can abandon a hand-over stuck on a full stream buffer. That
creates four asyncio tasks and an ``asyncio.wait`` per record, the largest single cost of consuming with
Faust here. The hand-over only waits when the flow is suspended or a subscribed stream's buffer is full;
otherwise it runs to completion without suspending. So in that case this consumer awaits it directly,
and everything else (the race with a suspension, a full buffer's back-pressure) stays Faust's.

``RawRecords``, the schema of the linker's consumed topics, makes the same kind of cut in the hand-over's
decode: the record's bytes go into the stream's event as they came.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import AppT, EventT, Message
from mode.services import WaitArgT, WaitResults


class Consumer(aiokafka_driver.Consumer):
    # Hand-overs done directly / left to Faust's wait_first (tests; a rough gauge of back-pressure).
    handed_over = 0
    waited = 0
    _threaded_producer: bool | None = None

    async def wait_first(self, *coros: WaitArgT, timeout: Any = None) -> WaitResults:
        handover = coros[0] if len(coros) == 2 and timeout is None else None
        if isinstance(handover, CoroutineType) and handover.cr_code is _callback_code(self):
            if self._cannot_wait(handover):
                self.handed_over += 1
                stop_waiting = coros[1]
                if isinstance(stop_waiting, CoroutineType):
                    stop_waiting.close()  # the suspension's wait, never started
                return WaitResults([handover], [await handover], False)
            self.waited += 1
        return await super().wait_first(*coros, timeout=timeout)

    def _cannot_wait(self, handover: CoroutineType[Any, Any, Any]) -> bool:
        """True when ``handover`` is the fetch loop's hand-over of a record and nothing can make it wait."""
        if self.suspend_flow.is_set():
            return False
        app = self.app
        if not app.flow_control.is_active() or self._producer_buffer_full():
            return False
        message = handover.cr_frame.f_locals.get("message") if handover.cr_frame else None
        if message is None:
            return False
        conductor: Any = app.topics  # the index is the implementation's, not on ConductorT
        channels = conductor._topic_name_index.get(message.topic, ())
        return all(not channel.queue.full() for channel in channels)

    def _producer_buffer_full(self) -> bool:
        """``app.producer.buffer.size > max_messages`` (what makes Faust's hand-over wait), without the
        settings lookup ``size`` makes on every call (~2.8 us, measured): the worker never uses Faust's
        threaded producer."""
        buffer = self.app.producer.buffer
        if self._threaded_producer is None:
            self._threaded_producer = bool(self.app.conf.producer_threaded)
        if self._threaded_producer:
            return bool(buffer.size > buffer.max_messages)
        return buffer.pending.qsize() > buffer.max_messages


def _callback_code(consumer: Consumer) -> Any:
    return getattr(consumer.callback, "__code__", None)


class RawRecords(faust.Schema[bytes, bytes]):
    """Raw key and value bytes, handed to the stream as they came: the decode Faust compiles for raw
    serializers goes through its codec registry and its settings for every record (6.9 us against 0.6 us
    for the event alone, measured)."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def compile(self, app: AppT, **_: Any) -> Callable[..., Awaitable[EventT[Any]]]:
        event_class: Any = app.conf.Event  # looked up once, not per record

        async def decode(message: Message, *, propagate: bool = False) -> EventT[Any]:
            event: EventT[Any] = event_class(app, message.key, message.value, message.headers, message)
            return event

        return decode


class Transport(aiokafka_driver.Transport):
    Consumer = Consumer


class App(faust.App):
    """``faust.App`` whose Kafka consumer is the one above."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)
