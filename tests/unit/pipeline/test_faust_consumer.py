"""The worker's Faust consumer hands a fetched record straight to the stream when nothing can make the
hand-over wait, and leaves every other case to Faust's ``wait_first`` (a full stream buffer, a suspended
flow, any other wait of the consumer). A real Faust app and conductor; nothing is sent to a broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from faust.types import TP, Message

from pipeline import faust_consumer


@pytest.fixture
async def app() -> AsyncIterator[faust_consumer.App]:
    app = faust_consumer.App("t-handover", broker="kafka://127.0.0.1:9", store="memory://", stream_buffer_maxsize=2)
    topic = app.topic("x", schema=faust_consumer.RawRecords())  # as the linker's topics
    topic.__aiter__()  # what a stream does: an iterating channel, subscribed through the conductor
    conductor: Any = app.topics
    await conductor._update_indices()
    await app.topics.on_partitions_assigned({TP("x", 0)})
    app.flow_control.resume()
    yield app


def _message(offset: int) -> Message:
    return Message("x", 0, offset, 0.0, 0, None, b"k", b"v%d" % offset, None)


async def test_a_record_is_handed_over_directly_while_the_buffer_has_room(app: faust_consumer.App) -> None:
    consumer = cast(faust_consumer.Consumer, app.consumer)
    assert isinstance(consumer, faust_consumer.Consumer)
    result = await consumer.wait_first(consumer.callback(_message(0)), consumer.suspend_flow.wait())
    assert not result.stopped and len(result.done) == 1
    assert consumer.handed_over == 1 and consumer.waited == 0
    (topic,) = cast(Any, app.topics)._topic_name_index["x"]
    assert topic.queue.get_nowait().message.value == b"v0"


async def test_a_full_buffer_leaves_the_hand_over_to_faust_which_a_suspension_abandons(
    app: faust_consumer.App,
) -> None:
    consumer = cast(faust_consumer.Consumer, app.consumer)
    for offset in range(2):  # the buffer holds 2
        await consumer.wait_first(consumer.callback(_message(offset)), consumer.suspend_flow.wait())
    assert consumer.handed_over == 2
    handover = consumer.callback(_message(2))
    pending = asyncio.ensure_future(consumer.wait_first(handover, consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    assert not pending.done() and consumer.waited == 1  # back-pressure: Faust's hand-over waits for room
    consumer.suspend_flow.set()  # a rebalance: Faust gives the waiting hand-over up
    result = await asyncio.wait_for(pending, 5)
    assert handover not in result.done and len(result.done) == 1
    (topic,) = cast(Any, app.topics)._topic_name_index["x"]
    assert topic.queue.qsize() == 2


async def test_a_suspended_flow_and_other_waits_are_faust_s(app: faust_consumer.App) -> None:
    consumer = cast(faust_consumer.Consumer, app.consumer)
    app.flow_control.suspend()
    callback = consumer.callback(_message(0))
    waiting = asyncio.ensure_future(consumer.wait_first(callback, consumer.suspend_flow.wait()))
    await asyncio.sleep(0.05)
    assert consumer.handed_over == 0 and consumer.waited == 1 and not waiting.done()
    consumer.suspend_flow.set()
    await asyncio.wait_for(waiting, 5)
    # Not a hand-over: a plain wait on an event goes to Faust's wait_first untouched.
    event = asyncio.Event()
    event.set()
    result = await consumer.wait_first(event.wait(), asyncio.sleep(10))
    assert len(result.done) == 1 and consumer.waited == 1 and consumer.handed_over == 0


def test_the_producer_buffer_check_is_faust_s_size_without_its_settings_lookup(app: faust_consumer.App) -> None:
    consumer = cast(faust_consumer.Consumer, app.consumer)
    buffer = app.producer.buffer
    for _ in range(buffer.max_messages + 1):
        assert consumer._producer_buffer_full() is (buffer.size > buffer.max_messages) is False
        buffer.pending.put_nowait(cast(Any, None))
    # Over the bound Faust's hand-over would wait for the buffer to ebb: so no direct hand-over.
    assert consumer._producer_buffer_full() is (buffer.size > buffer.max_messages) is True


async def test_raw_records_reach_the_stream_as_faust_s_raw_decode_gives_them() -> None:
    app = faust_consumer.App("t-raw", broker="kafka://127.0.0.1:9", store="memory://")
    ours = app.topic("x", schema=faust_consumer.RawRecords())
    fausts = app.topic("x", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    for key, value, headers in ((b"sha256:ab", b"\x00\x01avro", [("la-origin", b"w/1")]), (None, None, [])):
        message = Message("x", 2, 7, 0.0, 0, headers, key, value, None)
        event, reference = await ours.decode(message, propagate=True), await fausts.decode(message, propagate=True)
        assert event.message is message and (event.key, event.value) == (key, value)
        assert (event.key, event.value, event.headers) == (reference.key, reference.value, reference.headers)
        assert dict(event.headers) == dict(headers)
        assert type(event) is type(reference)
