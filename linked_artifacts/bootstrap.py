"""One-time set-up every process may run at start: topics exist, schemas are registered."""

from __future__ import annotations

import asyncio

from linked_artifacts import avro_schema, topics
from linked_artifacts.avro import SchemaRegistry
from linked_artifacts.settings import Settings

# Backward compatibility against every earlier version: new readers must read all history in Kafka.
COMPATIBILITY = "BACKWARD_TRANSITIVE"

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


def bootstrap(settings: Settings) -> tuple[list[str], dict[str, int]]:
    created = asyncio.run(topics.ensure_topics(settings))
    return created, register_schemas(settings)
