"""Topic names and their definitions. The project creates its topics itself, with explicit settings."""

from __future__ import annotations

from typing import Any, NamedTuple

from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings


class TopicSpec(NamedTuple):
    name: str
    partitions: int
    config: dict[str, str]
    # The worker sends to these topics with the partition of the key's events (and reads them as one
    # partition set), so their partition count must be ``topic_partitions`` exactly.
    copartitioned: bool = False


def events_topic(settings: Settings) -> str:
    return settings.topic("artifact-events")


def dead_letter_topic(settings: Settings) -> str:
    return settings.topic("dead-letter")


def enriched_topic(settings: Settings) -> str:
    return settings.topic("linked-artifacts")


def attestations_topic(settings: Settings) -> str:
    return settings.topic("attestations")


def derived_topic(settings: Settings) -> str:
    return settings.topic("derived")


# The largest record the topics take: a 5 MiB request body plus headers and Avro framing must fit in one, and
# so must a linked state that outgrew a megabyte (thousands of alerts from several scanners).
RECORD_MAX_BYTES = 8 * 1024 * 1024


def topic_specs(settings: Settings) -> list[TopicSpec]:
    partitions = settings.topic_partitions
    big = {"max.message.bytes": str(RECORD_MAX_BYTES)}
    return [
        # Canonical events are the source of truth for replays and rebuilds: keep them.
        TopicSpec(events_topic(settings), partitions, {"retention.ms": "-1", **big}, copartitioned=True),
        TopicSpec(dead_letter_topic(settings), 1, {"retention.ms": str(30 * 24 * 3600 * 1000), **big}),
        # Latest linked state per digest: compaction keeps one record per key.
        TopicSpec(enriched_topic(settings), partitions, {"cleanup.policy": "compact", **big}, copartitioned=True),
        # Facts one key sends another (pipeline.derive); co-partitioned with the events so a key's events
        # and derived messages meet in the same worker. Consumed state is in the table, so a week is ample.
        TopicSpec(
            derived_topic(settings), partitions, {"retention.ms": str(7 * 24 * 3600 * 1000)}, copartitioned=True
        ),
        # Original attestation bytes, keyed by their sha256: compaction drops redeliveries.
        TopicSpec(attestations_topic(settings), partitions, {"cleanup.policy": "compact", **big}),
    ]


async def ensure_topics(settings: Settings) -> list[str]:
    """Create any missing topic. Returns the names created now."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="linked-artifacts-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        specs = topic_specs(settings)
        missing = [spec for spec in specs if spec.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=spec.name,
                        num_partitions=spec.partitions,
                        replication_factor=settings.topic_replication_factor,
                        topic_configs=spec.config,
                    )
                    for spec in missing
                ]
            )
        # Checked after the creation too: a topic made by hand a moment ago can be missing from the list
        # above, and creating it again fails in the response without raising.
        copartitioned = [spec for spec in specs if spec.copartitioned]
        check_partitions(copartitioned, await admin.describe_topics([spec.name for spec in copartitioned]))
        return [spec.name for spec in missing]
    finally:
        await admin.close()


def check_partitions(specs: list[TopicSpec], described: list[dict[str, Any]]) -> None:
    """Refuse topics that exist with another partition count than the worker's co-partitioning needs:
    a key's events, derived messages, state and enriched record would land on different partitions."""
    # A topic created a moment ago (by another process bootstrapping at the same time) may not have its
    # partitions in the metadata yet: only a known count is judged.
    counts = {
        topic.get("topic", topic.get("name")): len(topic["partitions"])
        for topic in described
        if not topic.get("error_code") and topic.get("partitions")
    }
    wrong = [(spec, counts[spec.name]) for spec in specs if counts.get(spec.name, spec.partitions) != spec.partitions]
    if wrong:
        listed = ", ".join(f"{spec.name} has {count}" for spec, count in wrong)
        raise StackError(
            f"topics exist with the wrong partition count ({listed}; LINKED_ARTIFACTS_TOPIC_PARTITIONS is "
            f"{wrong[0][0].partitions}). Set LINKED_ARTIFACTS_TOPIC_PARTITIONS to the topics' count, or "
            "recreate the topics with that many partitions (events can be replayed from the events topic)."
        )
