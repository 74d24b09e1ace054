"""The artifact page's provenance link against the real broker: the bytes the connectors published to the
attestations topic are the bytes /attestations/<sha256> serves."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import pytest

from connectors.base import Delivery, ParseResult
from connectors.publisher import KafkaPublisher
from tests.conftest import Stack
from web.attestations import AttestationsUnavailable, KafkaAttestations

pytestmark = pytest.mark.integration


def statement(n: int) -> bytes:
    return (b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "app", "digest": {"sha256": "'
            + hashlib.sha256(f"{uuid.uuid4()}-{n}".encode()).hexdigest().encode() + b'"}}]}')


async def test_the_reader_finds_what_the_publisher_wrote(stack: Stack) -> None:
    raws = [statement(n) for n in range(12)]  # enough to land on every partition
    publisher = KafkaPublisher(stack.settings)
    await publisher.start()
    try:
        delivery = Delivery(endpoint="/events/attestations", headers={}, body=b"", received_at=datetime.now(UTC))
        await publisher.publish(ParseResult(attestations=tuple(raws)), delivery)
    finally:
        await publisher.stop()
    reader = KafkaAttestations(stack.settings)
    for raw in raws:
        # Eventually readable: an earlier fault test may have SIGKILLed the broker, whose partitions can
        # still be recovering (leaders not yet elected) when this runs.
        deadline = asyncio.get_running_loop().time() + 60
        found = await reader.fetch(hashlib.sha256(raw).hexdigest())
        while found is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(1)
            found = await reader.fetch(hashlib.sha256(raw).hexdigest())
        assert found == raw
    assert await reader.fetch("0" * 64) is None


async def test_an_unreachable_broker_is_reported_not_hung() -> None:
    from linked_artifacts.settings import Settings
    from tests.conftest import free_port

    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with pytest.raises(AttestationsUnavailable):
        await KafkaAttestations(settings, timeout=5).fetch("a" * 64)
