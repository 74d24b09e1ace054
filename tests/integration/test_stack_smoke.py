"""The stack's parts answer: a schema registered in the real registry, a framed message through the real
broker, rows through clickhouse-connect with insert deduplication."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import clickhouse_connect
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent, StorageBody
from tests.conftest import Stack

pytestmark = pytest.mark.integration

DIGEST = "sha256:" + "ab" * 32


def storage_event(digest: str = DIGEST, *, repository: str = "docker-prod-local") -> ArtifactEvent:
    """A pushed image's storage event, with a fresh event id."""
    now = datetime(2026, 5, 5, 10, 11, 12, 123456, tzinfo=UTC)
    return ArtifactEvent(
        event_id="e-" + uuid.uuid4().hex,
        key=digest,
        kind="storage",
        source="artifactory",
        digest=digest,
        event_time=now,
        ingest_time=now,
        delivery_id="d-1",
        storage=StorageBody(
            registry="jfrog-artifactory",
            registry_url="https://acme.jfrog.io/artifactory/",
            repository=repository,
            path="acme/payments-api/1.42.0/list.manifest.json",
            tags=["1.42.0"],
            action="pushed",
        ),
    )


def test_registry_gives_the_same_id_to_the_same_schema(stack: Stack) -> None:
    registry = SchemaRegistry(stack.settings.schema_registry_url)
    subject = f"smoke-{uuid.uuid4().hex[:8]}-value"
    schema = {"type": "record", "name": "Smoke", "fields": [{"name": "a", "type": "string"}]}
    first = registry.register(subject, schema)
    again = SchemaRegistry(stack.settings.schema_registry_url).register(subject, schema)
    assert first == again
    assert subject in registry.subjects()


async def test_framed_event_round_trips_through_broker_and_registry(stack: Stack) -> None:
    settings = stack.settings
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    await admin.close()

    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=f"{topic}-value",
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    event = storage_event()
    payload = codec.encode(event)
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == codec.schema_id

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload, key=event.key.encode())
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    # A fresh registry client proves the schema is resolved by id from the registry, not from a cache.
    reader = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=f"{topic}-value",
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    assert record.key == DIGEST.encode()
    assert reader.decode(record.value) == event
    # The registry hands back exactly the schema we registered, so records are read without a schema
    # resolution per record (AvroCodec._reader_for).
    assert reader._readers == {codec.schema_id: None}


def test_clickhouse_repeated_insert_with_same_token_adds_no_rows(clickhouse_dsn: str) -> None:
    client = clickhouse_connect.get_client(dsn=clickhouse_dsn)
    db = f"smoke_{uuid.uuid4().hex[:8]}"
    client.command(f"CREATE DATABASE {db}")
    # Deduplication is off by default on non-replicated tables; the window switches it on.
    client.command(
        f"CREATE TABLE {db}.rows (id UInt64, name String) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 1000"
    )
    rows = [[i, f"row-{i}"] for i in range(1000)]
    for _ in range(3):
        client.insert(
            f"{db}.rows",
            rows,
            column_names=["id", "name"],
            settings={"insert_deduplication_token": "partition-0:0-999"},
        )
    assert client.query(f"SELECT count(), uniqExact(id) FROM {db}.rows").result_rows == [(1000, 1000)]
    client.insert(
        f"{db}.rows",
        [[5000, "new"]],
        column_names=["id", "name"],
        settings={"insert_deduplication_token": "partition-0:1000-1000"},
    )
    assert client.query(f"SELECT count() FROM {db}.rows").result_rows == [(1001,)]
