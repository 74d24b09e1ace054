"""Kafka goes away while requests arrive: the connectors answer 503 (never 2xx for what they could not store),
and take input again as soon as Kafka is back, without a restart."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from connectors.app import create_app
from connectors.base import Delivery, ParseResult, event_id
from linked_artifacts.events import ArtifactEvent, StorageBody
from linked_artifacts.settings import Settings
from linked_artifacts.topics import events_topic
from tests.conftest import Stack

pytestmark = [pytest.mark.integration, pytest.mark.fault]


def parser(delivery: Delivery, payload: Any) -> ParseResult:
    digest = payload["digest"]
    event = ArtifactEvent(
        event_id=event_id("fault", digest),
        key=digest,
        kind="storage",
        source="demo",
        digest=digest,
        event_time=datetime(2026, 5, 5, tzinfo=UTC),
        ingest_time=delivery.received_at,
        delivery_id=digest[-16:],
        storage=StorageBody(
            registry="demo", registry_url="https://r.example/", repository="fault", action="pushed"
        ),
    )
    return ParseResult(events=(event,))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://connectors", timeout=60) as client:
            yield client


async def post(client: httpx.AsyncClient, settings: Settings, digest: str) -> httpx.Response:
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {settings.secret('kubernetes_token')}",
    }
    return await client.post("/events/kubernetes", content=json.dumps({"digest": digest}), headers=headers)


def new_digest() -> str:
    return "sha256:" + uuid.uuid4().hex * 2


async def keys_on_kafka(settings: Settings, wanted: set[str], *, timeout: float = 60.0) -> set[str]:
    consumer = AIOKafkaConsumer(
        events_topic(settings),
        bootstrap_servers=settings.kafka_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: set[str] = set()
    try:
        deadline = time.monotonic() + timeout
        while not wanted <= found and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            found |= {r.key.decode() for records in batches.values() for r in records if r.key}
    finally:
        await consumer.stop()
    return found & wanted


async def test_kafka_outage_gives_503s_and_ingestion_resumes_without_restart(stack: Stack) -> None:
    settings = stack.settings
    app = create_app(settings, parsers={"kubernetes": parser})
    acknowledged: set[str] = set()
    async with running(app) as client:
        first = new_digest()
        assert (await post(client, settings, first)).status_code == 202
        acknowledged.add(first)

        await asyncio.to_thread(stack.stop_kafka)
        try:
            outage: list[tuple[int, float, str | None]] = []
            for _ in range(4):
                started = time.monotonic()
                response = await post(client, settings, new_digest())
                outage.append(
                    (response.status_code, time.monotonic() - started, response.headers.get("Retry-After"))
                )
            concurrent = await asyncio.gather(*(post(client, settings, new_digest()) for _ in range(8)))
        finally:
            await asyncio.to_thread(stack.start_kafka)

        assert all(status == 503 for status, _, _ in outage), outage
        assert all(retry_after for _, _, retry_after in outage)
        assert all(elapsed < 10 for _, elapsed, _ in outage)  # bounded: within GitHub's 10 s
        assert {r.status_code for r in concurrent} == {503}

        # Back: the same app (no restart) takes input again once its producer reconnects.
        deadline = time.monotonic() + 90
        resumed_after: float | None = None
        back = time.monotonic()
        while time.monotonic() < deadline:
            digest = new_digest()
            response = await post(client, settings, digest)
            assert response.status_code in (202, 503), response.text
            if response.status_code == 202:
                acknowledged.add(digest)
                resumed_after = time.monotonic() - back
                break
            await asyncio.sleep(0.5)
        assert resumed_after is not None, "ingestion did not resume within 90 s of Kafka's restart"
        for _ in range(5):
            digest = new_digest()
            assert (await post(client, settings, digest)).status_code == 202
            acknowledged.add(digest)

    # Everything answered 2xx is on Kafka.
    assert await keys_on_kafka(settings, acknowledged) == acknowledged


async def test_kafka_killed_under_load_loses_no_acknowledged_event(stack: Stack) -> None:
    settings = stack.settings
    app = create_app(settings, parsers={"kubernetes": parser})
    acknowledged: set[str] = set()
    statuses: dict[int, int] = {}
    stop = asyncio.Event()

    async def sender(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            digest = new_digest()
            status = (await post(client, settings, digest)).status_code
            statuses[status] = statuses.get(status, 0) + 1
            if 200 <= status < 300:
                acknowledged.add(digest)
            elif status == 503:
                await asyncio.sleep(0.2)

    async with running(app) as client:
        senders = [asyncio.create_task(sender(client)) for _ in range(4)]
        await asyncio.sleep(2)
        await asyncio.to_thread(stack.kill_kafka)  # SIGKILL: in-flight produce requests never get an answer
        await asyncio.sleep(3)
        await asyncio.to_thread(stack.start_kafka)
        before = len(acknowledged)
        deadline = time.monotonic() + 90
        while len(acknowledged) < before + 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*senders)

    assert set(statuses) <= {202, 503}, statuses
    assert statuses.get(503, 0) > 0
    assert len(acknowledged) >= before + 20, f"ingestion did not resume: {statuses}"
    assert await keys_on_kafka(settings, acknowledged) == acknowledged
