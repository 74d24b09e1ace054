"""When a fault test's published states differ from the crash-free ones: the history of each differing key on
every topic the worker reads or writes, so one failed CI run is enough to see which write went wrong.

Each line is one record: topic, partition, offset, broker timestamp, the ``la-origin`` header (the worker
process and its batch number, see pipeline/worker.py) and, for states, the version and which of the
missing event ids it holds.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from linked_artifacts import bootstrap, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.settings import Settings
from pipeline.changelog import read_state
from pipeline.state import LinkedArtifactState


def changelog_topic(settings: Settings) -> str:
    """Faust's name for the linker table's changelog (app id, table name)."""
    return f"{settings.worker_id}-linked-state-changelog"


async def _scan(settings: Settings, topic: str) -> list[Any]:
    """Every record of ``topic`` (the fault tests' topics hold a few thousand)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.kafka_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(batch)
    finally:
        await consumer.stop()
    return out


def _at(record: Any) -> str:
    return datetime.fromtimestamp(record.timestamp / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _origin(record: Any) -> str:
    return next((v.decode() for k, v in record.headers or () if k == "la-origin"), "-")


def timeline(settings: Settings, keys: list[str], missing: dict[str, set[str]]) -> list[dict[str, Any]]:
    """Every record keyed by one of ``keys`` on the events, derived, changelog and enriched topics, in broker
    time order. ``missing[key]`` are the event ids the key's published state lacks."""
    state_codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "linked_artifact"),
        schema_name="linked_artifact",
        model=LinkedArtifactState,
    )
    wanted = {k.encode() for k in keys}
    sources = {
        "events": topics.events_topic(settings),
        "derived": topics.derived_topic(settings),
        "changelog": changelog_topic(settings),
        "enriched": topics.enriched_topic(settings),
    }
    rows: list[dict[str, Any]] = []
    for role, topic in sources.items():
        for r in asyncio.run(_scan(settings, topic)):
            if r.key not in wanted:
                continue
            key = r.key.decode()
            row: dict[str, Any] = {
                "at": _at(r),
                "topic": role,
                "partition": r.partition,
                "offset": r.offset,
                "key": key,
                "origin": _origin(r),
            }
            state: LinkedArtifactState | None = None
            if role == "changelog" and r.value is not None:
                state = read_state(r.value, state_codec)
            elif role == "enriched" and r.value is not None:
                state = state_codec.decode(r.value)
            elif role == "derived":
                row["from"] = json.loads(r.value).get("origin_key")
            if state is not None:
                row["version"] = state.version
                row["holds_missing"] = sorted(set(state.event_ids) & missing.get(key, set()))
            rows.append(row)
    return sorted(rows, key=lambda row: (row["at"], row["topic"], row["offset"]))


def where_events_are(settings: Settings, event_ids: set[str]) -> list[dict[str, Any]]:
    """The events topic position of each of ``event_ids``."""
    from linked_artifacts.events import ArtifactEvent

    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "artifact_event"),
        schema_name="artifact_event",
        model=ArtifactEvent,
    )

    found = []
    for r in asyncio.run(_scan(settings, topics.events_topic(settings))):
        event = codec.decode(r.value)
        if event.event_id in event_ids:
            found.append(
                {
                    "event_id": event.event_id,
                    "key": r.key.decode(),
                    "partition": r.partition,
                    "offset": r.offset,
                    "at": _at(r),
                }
            )
    return found
