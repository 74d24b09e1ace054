"""One-time set-up every process may run at start: topics exist, schemas are registered."""

from __future__ import annotations

import asyncio
import time

from linked_artifacts import avro_schema, topics
from linked_artifacts.avro import SchemaRegistry
from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings

# Backward compatibility against every earlier version: new readers must read all history in Kafka.
COMPATIBILITY = "BACKWARD_TRANSITIVE"

# How long a Kafka may take to name a coordinator for the worker's consumer groups: a fresh one creates its
# offsets topic on the first request and elects the coordinators (~0.1-0.5 s here).
COORDINATOR_WAIT_S = 30.0

# schema file -> the topic whose values it describes (Confluent TopicNameStrategy: "<topic>-value")
SUBJECTS: dict[str, str] = {
    "artifact_event": "artifact-events",
    "dead_letter": "dead-letter",
    "linked_artifact": "linked-artifacts",
}


def subject_for(settings: Settings, schema_name: str) -> str:
    return f"{settings.topic(SUBJECTS[schema_name])}-value"


def register_schemas(settings: Settings) -> dict[str, int]:
    """Register the current schema of every subject; returns subject -> schema id."""
    registry = SchemaRegistry(settings.schema_registry_url)
    try:
        ids: dict[str, int] = {}
        for name in SUBJECTS:
            if not avro_schema.schema_path(name).is_file():
                continue
            subject = subject_for(settings, name)
            registry.set_compatibility(subject, COMPATIBILITY)
            ids[subject] = registry.register(subject, avro_schema.load(name))
        return ids
    finally:
        registry.close()


async def wait_for_group_coordinator(settings: Settings, *, timeout: float = COORDINATOR_WAIT_S) -> int:
    """Ask Kafka for the coordinator of the worker's consumer group until it names one; returns its broker id.

    A fresh Kafka creates its offsets topic on the first such request, and answers "not available" meanwhile.
    A consumer that asks then logs an ERROR line (aiokafka's) and retries: harmless, but at 3 a.m. it reads
    like the cause of whatever else went wrong. Asked here first, at bootstrap, the coordinator is there when
    the consumers start. A Kafka that never names one is an error that says where to look."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="linked-artifacts-admin")
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                coordinator: int = await admin.find_coordinator(settings.worker_id)
                return coordinator
            except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError) as exc:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"Kafka at {settings.kafka_servers} named no coordinator for consumer group "
                        f"{settings.worker_id!r} within {timeout:g} s ({exc}). Its offsets topic "
                        "(__consumer_offsets) is missing or has no leader. Fix: check the broker's log; a "
                        "broker whose offsets.topic.replication.factor is larger than its number of brokers "
                        "never creates it"
                    ) from exc
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


def bootstrap(settings: Settings) -> tuple[list[str], dict[str, int]]:
    """Topics exist, schemas are registered, and Kafka's group coordinator is up before any consumer asks."""

    async def kafka() -> list[str]:
        created = await topics.ensure_topics(settings)
        await wait_for_group_coordinator(settings)
        return created

    created = asyncio.run(kafka())
    return created, register_schemas(settings)
