"""The worker's stream batches what is waiting: a backlog in batches of ``most``, the rest as soon as
nothing more waits, never after the window when records stop coming. A real Faust app, conductor and
stream, fed through the consumer's hand-over; nothing is sent to a broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import pytest
from faust.types import TP, Message

from pipeline import batching, faust_consumer

WINDOW = 30.0  # far longer than any test: a batch handed over early was not waiting for the window
CHECK = 0.02


@pytest.fixture
async def app() -> AsyncIterator[faust_consumer.App]:
    app = faust_consumer.App(
        "t-batching", broker="kafka://127.0.0.1:9", store="memory://", stream_buffer_maxsize=100,
        Stream=batching.Stream,
    )
    yield app


async def _stream(app: faust_consumer.App) -> batching.Stream:
    topic = app.topic("x", key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    stream = cast(batching.Stream, app.stream(topic))
    assert isinstance(stream, batching.Stream)
    conductor: Any = app.topics
    await conductor._update_indices()
    await app.topics.on_partitions_assigned({TP("x", 0)})
    app.flow_control.resume()
    return stream


async def _fetch(app: faust_consumer.App, offsets: range) -> None:
    """What the fetch loop does with each fetched record: hand it over to the stream's buffer."""
    consumer = cast(faust_consumer.Consumer, app.consumer)
    for offset in offsets:
        # Of the consumer's current generation: the stream skips records fetched before a rebalance.
        message = Message("x", 0, offset, 0.0, 0, None, b"k", b"v%d" % offset, None, generation_id=0)
        await consumer.wait_first(consumer.callback(message), consumer.suspend_flow.wait())


async def test_a_backlog_comes_in_full_batches_and_its_rest_without_waiting_for_the_window(
    app: faust_consumer.App,
) -> None:
    stream = await _stream(app)
    await _fetch(app, range(25))
    started = time.monotonic()
    sizes: list[int] = []
    offsets: list[int] = []
    async for batch in stream.take_backlog(10, window=WINDOW, check=CHECK):
        sizes.append(len(batch))
        offsets.extend(event.message.offset for event in batch)
        if sum(sizes) == 25:
            break
    assert sizes == [10, 10, 5]
    assert offsets == list(range(25))  # each record once, in order
    assert time.monotonic() - started < 5


async def test_a_quiet_stream_hands_over_a_single_record_at_the_next_check(app: faust_consumer.App) -> None:
    stream = await _stream(app)
    batches = stream.take_backlog(1_000, window=WINDOW, check=CHECK)
    first = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.1)
    assert not first.done()  # nothing fetched, nothing handed over
    fetched = time.monotonic()
    await _fetch(app, range(1))
    batch = await asyncio.wait_for(first, 5)
    assert [event.message.offset for event in batch] == [0]
    assert time.monotonic() - fetched < 2  # the check's interval, not the 30 s window
    await batches.aclose()


async def test_records_fetched_while_a_batch_is_handled_make_the_next_batch_and_are_acked_after_it(
    app: faust_consumer.App,
) -> None:
    stream = await _stream(app)
    await _fetch(app, range(3))
    seen: list[list[int]] = []
    held: list[Any] = []
    async for batch in stream.take_backlog(10, window=WINDOW, check=CHECK):
        seen.append([event.message.offset for event in batch])
        assert not any(event.message.acked for event in batch)  # not before the loop body has ended
        held.extend(batch)
        if len(seen) == 1:
            # Fetched while the first batch is being handled: they wait for the next one.
            await _fetch(app, range(3, 7))
            await asyncio.sleep(0.1)
        else:
            break
    assert seen == [[0, 1, 2], [3, 4, 5, 6]]
    assert all(event.message.acked for event in held[:3])


async def test_records_waiting_in_the_buffer_join_the_batch_even_after_the_window(app: faust_consumer.App) -> None:
    stream = await _stream(app)

    async def slowly(value: Any) -> Any:
        await asyncio.sleep(0.01)  # records leave the buffer slower than the window allows for all of them
        return value

    stream.add_processor(slowly)  # runs before the batching's own processor
    await _fetch(app, range(100))
    started = time.monotonic()
    batches = stream.take_backlog(1_000, window=0.3, check=CHECK)
    batch = await asyncio.wait_for(batches.__anext__(), 10)
    # Cut at the window, the batch would hold the ~30 records moved by then, and the next batch would write
    # and publish the same keys again (a linker started on a backlog folded 270 records while 27,100 waited).
    offsets = [event.message.offset for event in batch]
    # All of them, but for the one the stream may be moving when the buffer runs empty.
    assert offsets == list(range(len(offsets))) and len(offsets) >= 99
    assert time.monotonic() - started >= 0.3
    await batches.aclose()


async def test_records_waiting_only_at_the_broker_are_given_the_window_then_the_batch_goes(
    app: faust_consumer.App,
) -> None:
    stream = await _stream(app)
    await _fetch(app, range(3))
    started = time.monotonic()
    batches = stream.take_backlog(1_000, window=0.3, check=CHECK, behind=lambda read_to: True)
    batch = await asyncio.wait_for(batches.__anext__(), 5)
    waited = time.monotonic() - started
    assert [event.message.offset for event in batch] == [0, 1, 2]  # a busy stream's records wait no longer
    assert 0.3 <= waited < 2
    await batches.aclose()


async def test_a_batch_waits_for_records_the_broker_still_holds(app: faust_consumer.App) -> None:
    stream = await _stream(app)
    asked: list[dict[TP, int]] = []
    more_at_broker = True

    def behind(read_to: Mapping[TP, int]) -> bool:
        asked.append(dict(read_to))
        return more_at_broker

    await _fetch(app, range(3))
    batches = stream.take_backlog(1_000, window=WINDOW, check=CHECK, behind=behind)
    first = asyncio.ensure_future(batches.__anext__())
    await asyncio.sleep(0.2)
    # The buffer is empty, but the broker's end is past offset 3: the batch keeps filling.
    assert not first.done() and asked and asked[-1] == {TP("x", 0): 3}
    await _fetch(app, range(3, 5))
    more_at_broker = False
    batch = await asyncio.wait_for(first, 2)
    assert [event.message.offset for event in batch] == [0, 1, 2, 3, 4]
    await batches.aclose()


def test_broker_behind_compares_highwaters_with_what_was_read_and_skips_revoked_partitions() -> None:
    class Consumer:
        highwaters = {TP("x", 0): 10, TP("x", 1): 4}

        def highwater(self, tp: TP) -> int | None:
            assert tp in self.highwaters, "Partition is not assigned"  # as aiokafka answers
            return self.highwaters[tp]

    behind = batching.broker_behind(Consumer())
    assert behind({TP("x", 0): 9})
    assert not behind({TP("x", 0): 10, TP("x", 1): 4})
    assert not behind({TP("x", 2): 0})  # revoked: nothing more comes to this worker
