"""Large records and the sends Kafka refuses.

A digest whose linked state outgrows a megabyte (an old base image scanned by several tools) is still
written and published: the topics take records of up to 8 MiB, and so does the linker's producer. Kafka
clients refuse a record above their ``max_request_size`` before it leaves the process (1,000,000 bytes by
default in Faust); with that default, the linker's agent crashed on the batch and the process stayed up,
healthy and idle.

A send Kafka refuses (here a topic made by hand with a small ``max.message.bytes``) stops the worker with
exit code 1 and a line that says why, instead. Nothing is lost: the batch's offsets were not committed, and
the next start, once the topic is fixed, folds and publishes it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.structs import ConsumerRecord

from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.settings import Settings
from linked_artifacts.topics import RECORD_MAX_BYTES, dead_letter_topic, enriched_topic, events_topic
from pipeline.state import LinkedArtifactState
from tests.conftest import Services, Stack, free_port, start_service
from tests.integration.test_connectors_kafka import codecs, read_topic
from tests.unit.history.builders import Events

pytestmark = pytest.mark.integration

# 6,000 alerts make a record of ~2.1 MB (2,134,051 bytes measured), past Faust's default of 1,000,000.
ALERTS = 6_000


async def test_a_state_larger_than_a_megabyte_is_written_and_published(services: Services) -> None:
    settings = services.settings
    events_codec, _ = codecs(settings)
    digest = "sha256:" + uuid.uuid4().hex + uuid.uuid4().hex
    alert = _alerts(events_codec)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all", linger_ms=20)
    await producer.start()
    try:
        topic, key = events_topic(settings), digest.encode()
        await asyncio.gather(*[await producer.send(topic, alert(digest, i), key=key) for i in range(ALERTS)])
    finally:
        await producer.stop()

    # The enriched topic gets the state with every alert (at-least-once: maybe more than one version).
    record = await _published(settings, digest, alerts=ALERTS)
    assert len(record.value) > 1_000_000

    # The worker went on: its state answers, and so does a small digest sent after the large one.
    token = services.token("query_token")
    async with httpx.AsyncClient(base_url=services.query_url, headers={"Authorization": f"Bearer {token}"}) as query:
        response = await query.get(f"/v1/state/{digest}")
        assert response.status_code == 200
        assert len(response.json()["alerts"]) == ALERTS
        metrics = (await query.get("/metrics")).text
    assert "la_worker_linker_up 1" in metrics
    # ... and says how close the state is to the most a record may carry, before it gets there.
    largest = re.search(rf'la_worker_state_bytes_largest\{{key="{digest}"\}} ([0-9.e+]+)', metrics)
    assert largest and float(largest.group(1)) > 2_000_000, metrics
    limit = re.search(r"la_worker_state_bytes_limit ([0-9.e+]+)", metrics)
    assert limit and float(limit.group(1)) == settings.worker_state_max_bytes
    log = services.worker.log_file.read_text()
    assert f"the state of {digest} is " in log and "% of the 8,323,072 bytes a state may have here" in log

    small = "sha256:" + uuid.uuid4().hex + uuid.uuid4().hex
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(events_topic(settings), alert(small, ALERTS), key=small.encode())
    finally:
        await producer.stop()
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=services.query_url, headers={"Authorization": f"Bearer {token}"}) as query:
        while time.monotonic() < deadline:
            if (await query.get(f"/v1/state/{small}")).status_code == 200:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail("the worker did not merge an event sent after the large state")


async def test_a_send_kafka_refuses_stops_the_worker_and_a_restart_publishes_the_batch(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    settings = _own_worker(stack, tmp_path_factory, "refused")
    # The enriched topic exists before the worker starts, made by hand with records of at most 2 KB.
    enriched = enriched_topic(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(enriched, settings.topic_partitions, 1, topic_configs={"max.message.bytes": "2048"})]
        )
    finally:
        await admin.close()
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    try:
        events_codec, _ = codecs(settings)
        alert = _alerts(events_codec)
        digest = "sha256:" + uuid.uuid4().hex + uuid.uuid4().hex
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all")
        await producer.start()
        try:
            for i in range(20):  # ~5 KB of state
                await producer.send_and_wait(events_topic(settings), alert(digest, i), key=digest.encode())
        finally:
            await producer.stop()

        exit_code = await asyncio.to_thread(worker.wait, timeout=120)
        log = worker.log_file.read_text()
        assert exit_code == 1, log[-3000:]
        assert "the linker stops: batch" in log and "MessageSizeTooLargeError" in log
        assert f"on {enriched}" in log and f"--entity-name {enriched} --add-config max.message.bytes=8388608" in log
        assert "the linker process exited with code 1" in log

        # Fixed by hand, as the operator would; the events are still on their topic, their offsets uncommitted.
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers)
        await admin.start()
        try:
            limit = {"max.message.bytes": str(RECORD_MAX_BYTES)}
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, enriched, configs=limit)])
        finally:
            await admin.close()
        worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
        await _published(settings, digest, alerts=20)
    finally:
        worker.stop()


async def test_a_state_past_worker_state_max_bytes_freezes_its_key_and_the_worker_goes_on(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # 20,000 bytes is ~56 alerts (~353 bytes each); the limit stands in for the default's 8 MiB less 64 KiB.
    settings = _own_worker(stack, tmp_path_factory, "frozen", worker_state_max_bytes=20_000)
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    try:
        events_codec, dead_codec = codecs(settings)
        alert = _alerts(events_codec)
        digest, other = ("sha256:" + uuid.uuid4().hex + uuid.uuid4().hex for _ in range(2))
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers, acks="all", linger_ms=20)
        await producer.start()
        try:
            topic, key = events_topic(settings), digest.encode()
            await asyncio.gather(*[await producer.send(topic, alert(digest, i), key=key) for i in range(20)])
            await _published(settings, digest, alerts=20)
            await asyncio.gather(*[await producer.send(topic, alert(digest, i), key=key) for i in range(20, 120)])
            await producer.send_and_wait(topic, alert(other, 0), key=other.encode())
        finally:
            await producer.stop()

        # Every event of the digest is in its state or on the dead-letter topic: nothing is lost, and the state
        # stays within the limit. Batches decide where the cut falls, so the split is not fixed.
        token = stack.settings.secret("query_token") or ""
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.query_port}",
                                     headers={"Authorization": f"Bearer {token}"}) as query:
            while True:
                state = (await query.get(f"/v1/state/{digest}")).json()
                # The i-th alert: CVE-2026-(10000 + i) in the state, event id large-<run>-i on the dead-letter topic.
                kept = {int(a["vulnerability_id"].rsplit("-", 1)[1]) - 10_000 for a in state.get("alerts", [])}
                refused = await _refused(settings, dead_codec, events_codec, digest)
                if len(kept) + len(refused) >= 120 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1)
            assert not kept & refused and len(kept | refused) == 120, (len(kept), len(refused))
            assert 20 <= len(kept) < 120
            assert (await query.get(f"/v1/state/{other}")).status_code == 200  # the worker went on
            metrics = (await query.get("/metrics")).text
        assert "la_worker_states_frozen 1.0" in metrics
        assert worker.alive()  # still running: no crash loop
        log = worker.log_file.read_text()
        assert f"the state of {digest} would be " in log and "more than worker_state_max_bytes (20,000)" in log
    finally:
        worker.stop()


def _own_worker(stack: Stack, tmp_path_factory: pytest.TempPathFactory, name: str, **more: Any) -> Settings:
    """Settings for a worker of the test's own: its data, port, topics and consumer groups."""
    return stack.settings.model_copy(
        update={
            "data_dir": tmp_path_factory.mktemp(name),
            "query_port": free_port(),
            "topic_prefix": f"{name}-{uuid.uuid4().hex[:6]}.",
            "worker_id": f"{name}-{uuid.uuid4().hex[:6]}",
            **more,
        }
    )


async def _refused(
    settings: Settings, dead_codec: AvroCodec[Any], events_codec: AvroCodec[Any], digest: str
) -> set[int]:
    """Which of the digest's alerts (``i``) are on the dead-letter topic as state_too_large, read to its end."""
    topic = dead_letter_topic(settings)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_servers, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: set[int] = set()
    try:
        (end,) = (await consumer.end_offsets([TopicPartition(topic, 0)])).values()  # the topic has one partition
        read, deadline = 0, time.monotonic() + 30
        while read < end and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                read += len(records)
                for record in records:
                    letter = dead_codec.decode(record.value)
                    if letter.error_code == "state_too_large":
                        event = events_codec.decode(letter.body)
                        if event.key == digest:
                            found.add(int(event.event_id.rsplit("-", 1)[1]))
    finally:
        await consumer.stop()
    return found


def _alerts(codec: AvroCodec[Any]) -> Callable[[str, int], bytes]:
    """Encoded alert events, the ``i``th of a subject; event ids of their own (ClickHouse is shared)."""
    build = Events()
    run = uuid.uuid4().hex[:12]

    def alert(subject: str, i: int) -> bytes:
        event = build.alert(subject, vuln=f"CVE-2026-{10_000 + i}", tool="grype")
        return codec.encode(event.model_copy(update={"event_id": f"large-{run}-{i}"}))

    return alert


async def _published(settings: Settings, digest: str, *, alerts: int) -> ConsumerRecord:
    """The first record of ``digest`` on the enriched topic with ``alerts`` alerts."""
    enriched: AvroCodec[LinkedArtifactState] = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=f"{enriched_topic(settings)}-value",
        schema_name="linked_artifact",
        model=LinkedArtifactState,
    )

    def complete(record: ConsumerRecord) -> bool:
        return record.key == digest.encode() and len(enriched.decode(record.value).alerts) == alerts

    (record,) = await read_topic(settings, enriched_topic(settings), complete, n=1, timeout=120)
    return record
