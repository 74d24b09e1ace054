"""The original bytes of a build attestation, for the artifact page's provenance link.

The connectors keep every attestation they accept on the compacted attestations topic, keyed by the
sha256 of its bytes (``connectors/publisher.py``); ClickHouse holds only that sha256 (``build_attestation_sha256``).
So the page links to ``/attestations/<sha256>`` and the query service reads the bytes from Kafka.

Lifecycle of :class:`KafkaAttestations`: no connection until the first fetch; each fetch opens a
consumer, reads the one partition the key hashes to (the producer's default partitioner), and closes it.
The bytes are checked against the sha256 before they are served, and kept in a small cache: content
addressed bytes never change.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from typing import Any, Final, Protocol

from linked_artifacts.settings import Settings
from linked_artifacts.topics import attestations_topic

SHA256_HEX: Final = re.compile(r"^[0-9a-f]{64}$")
# A lookup reads one partition of a compacted topic; past this it gives up rather than hold the page.
FETCH_TIMEOUT_S: Final = 10.0
# Attestations are a few KB each; 64 of them bound the cache at a few MB even for large bundles.
CACHE_ENTRIES: Final = 64


class AttestationSource(Protocol):
    """Where the original attestation bytes come from.

    ``fetch`` returns the bytes whose sha256 is ``sha256_hex`` (64 lowercase hex), or None when none are
    kept. It raises :class:`AttestationsUnavailable` when the store cannot be read now (retry later).
    """

    async def fetch(self, sha256_hex: str) -> bytes | None: ...


class AttestationsUnavailable(Exception):
    """The attestation store cannot be read now; the message names what failed."""


class KafkaAttestations:
    """Reads attestations from the attestations topic."""

    def __init__(self, settings: Settings, *, timeout: float = FETCH_TIMEOUT_S) -> None:
        self._servers = settings.kafka_servers
        self._topic = attestations_topic(settings)
        self._timeout = timeout
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    async def fetch(self, sha256_hex: str) -> bytes | None:
        if not SHA256_HEX.match(sha256_hex):
            return None
        cached = self._cache.get(sha256_hex)
        if cached is not None:
            self._cache.move_to_end(sha256_hex)
            return cached
        try:
            async with asyncio.timeout(self._timeout):
                found = await self._scan(sha256_hex)
        except TimeoutError as exc:
            raise AttestationsUnavailable(
                f"reading {self._topic} from Kafka at {self._servers} took longer than {self._timeout:g}s"
            ) from exc
        if found is not None:
            self._cache[sha256_hex] = found
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return found

    async def _scan(self, sha256_hex: str) -> bytes | None:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        from aiokafka.errors import KafkaError
        from aiokafka.partitioner import DefaultPartitioner

        key = sha256_hex.encode()
        # Subscribed (without a group) only so the client learns the topic's partitions; it then reads the
        # one partition the key hashes to.
        consumer = AIOKafkaConsumer(self._topic, bootstrap_servers=self._servers, enable_auto_commit=False,
                                    group_id=None, client_id="linked-artifacts-web-attestations")
        try:
            await consumer.start()
            while not (known := consumer.partitions_for_topic(self._topic)):
                await asyncio.sleep(0.05)  # metadata arrives shortly after start; the caller's timeout bounds it
            partitions = sorted(known)
            # The producer's default partitioner (murmur2 of the key) put the record here.
            hashed = DefaultPartitioner()(key, partitions, partitions)
            consumer.unsubscribe()
            found: bytes | None = None
            # The producer's default partitioner (murmur2 of the key) put the record in `hashed`. Right
            # after a broker restart the metadata can list fewer partitions than the topic has, which would
            # point the hash elsewhere; then the other partitions are read too rather than answering "none".
            for number in [hashed, *(p for p in partitions if p != hashed)]:
                partition = TopicPartition(self._topic, number)
                consumer.assign([partition])
                end = (await consumer.end_offsets([partition]))[partition]
                await consumer.seek_to_beginning(partition)
                while end and await consumer.position(partition) < end:
                    batch = await consumer.getmany(partition, timeout_ms=1000, max_records=500)
                    for record in batch.get(partition, []):
                        if record.key == key and record.value is not None:
                            found = record.value  # keep the latest copy
                if found is not None:
                    break
            if found is not None and hashlib.sha256(found).hexdigest() != sha256_hex:
                return None  # never serve bytes that are not what the link names
            return found
        except KafkaError as exc:
            raise AttestationsUnavailable(f"Kafka at {self._servers} cannot be read: {exc}") from exc
        finally:
            await _stop(consumer)


async def _stop(consumer: Any) -> None:
    # aiokafka's group-less coordinator cancels its helper task on stop and awaits it; when the consumer
    # stops right after start, that task never ran and the await raises CancelledError. Swallow only that
    # one: a cancellation of this fetch itself must still propagate.
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
