"""A poison record on the events topic (undecodable, or failing validation) goes to the dead-letter topic with
its reason, and the partition goes on: the running worker merges the next event of the same key.

The connectors only publish validated events, so these records are written straight to the topic, as a
foreign or broken producer would."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from linked_artifacts.topics import dead_letter_topic, events_topic
from tests.conftest import Services
from tests.integration.test_connectors_kafka import codecs, header, read_topic
from tests.integration.test_stack_smoke import storage_event

pytestmark = pytest.mark.integration


async def test_poison_records_are_dead_lettered_with_their_reason_and_the_partition_goes_on(
    services: Services,
) -> None:
    settings = services.settings
    events_codec, dead_codec = codecs(settings)
    digest = "sha256:" + uuid.uuid4().hex + uuid.uuid4().hex
    good = storage_event(digest, repository="poison-test")
    framed = events_codec.encode(good)
    not_avro = b"not an avro frame " + uuid.uuid4().hex.encode()
    truncated = framed[: struct.calcsize(">bI") + 3]  # our schema id, then a body cut short
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    await producer.start()
    try:
        for value in (not_avro, truncated, framed):  # same key: same partition, in this order
            await producer.send_and_wait(events_topic(settings), value, key=digest.encode())
    finally:
        await producer.stop()

    # The good event behind the two poison records is merged: they did not block the partition.
    token = services.token("query_token")
    deadline = time.monotonic() + 60
    seen = ""
    async with httpx.AsyncClient(base_url=services.query_url, headers={"Authorization": f"Bearer {token}"}) as query:
        while time.monotonic() < deadline and "poison-test" not in seen:
            response = await query.get(f"/v1/state/{digest}")
            seen = response.text if response.status_code == 200 else ""
            await asyncio.sleep(0.5)
    assert "poison-test" in seen, "the good event behind the poison records never reached the worker's state"
    assert '"event_count":1' in seen.replace(" ", "")  # the good event alone: nothing of the poison was merged

    # One read per body: at-least-once may dead-letter a record twice (same dead_letter_id, the record's
    # topic:partition:offset, so a reader can tell).
    by_body = {}
    for body in (not_avro, truncated):

        def same_body(r: ConsumerRecord, body: bytes = body) -> bool:
            return dead_codec.decode(r.value).body == body

        (found,) = await read_topic(settings, dead_letter_topic(settings), same_body, n=1, timeout=60)
        by_body[body] = (found, dead_codec.decode(found.value))
    record, letter = by_body[not_avro]
    assert (letter.stage, letter.endpoint) == ("worker", events_topic(settings))
    assert "magic" in letter.reason  # "unknown magic byte ...; expected 0 (Confluent wire format)"
    assert header(record, "la-origin")  # which worker process and batch wrote it
    _, letter = by_body[truncated]
    assert (letter.stage, letter.endpoint) == ("worker", events_topic(settings))
    assert "does not match schema" in letter.reason
    assert letter.dead_letter_id.startswith(f"{events_topic(settings)}:")
