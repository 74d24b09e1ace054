"""The project's topics on a real broker: created with the configured partitions, and refused with a clear
error when they exist with a partition count the worker's co-partitioning cannot work with."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from linked_artifacts import bootstrap, topics
from linked_artifacts.errors import StackError
from tests.conftest import Stack

pytestmark = pytest.mark.integration


async def test_topics_are_created_with_the_configured_partitions_and_kept_on_a_second_run(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}.", "topic_partitions": 3})
    created = await topics.ensure_topics(settings)
    assert sorted(created) == sorted(spec.name for spec in topics.topic_specs(settings))
    assert await topics.ensure_topics(settings) == []  # existing, with the right partitions: accepted as they are


async def test_a_copartitioned_topic_with_another_partition_count_is_refused_naming_the_fix(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}.", "topic_partitions": 4})
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        # As an operator might have made it by hand, before the first start.
        await admin.create_topics([NewTopic(topics.enriched_topic(settings), num_partitions=2, replication_factor=1)])
        # Until the broker's metadata has the topic's partitions, the check cannot judge it (and passes).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (described,) = await admin.describe_topics([topics.enriched_topic(settings)])
            if not described.get("error_code") and len(described.get("partitions") or ()) == 2:
                break
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    with pytest.raises(StackError) as refused:
        await topics.ensure_topics(settings)
    message = str(refused.value)
    assert f"{topics.enriched_topic(settings)} has 2" in message
    assert "LINKED_ARTIFACTS_TOPIC_PARTITIONS is 4" in message and "recreate the topics" in message


def test_the_check_names_every_mismatch() -> None:
    specs = [
        topics.TopicSpec("a", 4, {}, copartitioned=True),
        topics.TopicSpec("b", 4, {}, copartitioned=True),
        topics.TopicSpec("c", 4, {}, copartitioned=True),
    ]
    described = [
        {"topic": "a", "partitions": [{}] * 4},
        {"topic": "b", "partitions": [{}] * 8},
        {"topic": "c", "partitions": [{}]},
    ]
    with pytest.raises(StackError, match=r"\(b has 8, c has 1;"):
        topics.check_partitions(specs, described)
    topics.check_partitions(specs[:1], described)  # the right count passes
    # A topic whose metadata has no partitions yet (created a moment ago elsewhere) is not judged.
    not_yet: list[dict[str, Any]] = [
        {"topic": "a", "partitions": []},
        {"topic": "b", "error_code": 5, "partitions": []},
    ]
    topics.check_partitions(specs, not_yet)


async def test_bootstrap_waits_until_kafka_names_a_group_coordinator(stack: Stack) -> None:
    # A group nobody has used: Kafka answers for it from its offsets topic, as the worker's consumers will.
    settings = stack.settings.model_copy(update={"worker_id": f"g{uuid.uuid4().hex[:8]}"})
    coordinator = await bootstrap.wait_for_group_coordinator(settings, timeout=30)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        brokers = {broker["node_id"] for broker in (await admin.describe_cluster())["brokers"]}
    finally:
        await admin.close()
    assert coordinator in brokers
