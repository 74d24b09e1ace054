"""Killing `linked-artifacts up` (even with SIGKILL) and starting it again keeps Kafka topics and offsets,
registered schemas and ClickHouse rows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from linked_artifacts.avro import SchemaRegistry
from linked_artifacts.stack.ports import port_is_free
from tests.conftest import free_port, free_port_pair

pytestmark = pytest.mark.fault

BIN = Path(sys.executable).parent


class Up:
    def __init__(self, tmp_path: Path) -> None:
        self.data = tmp_path / "data"
        self.kafka_port, self.registry_port = free_port(), free_port_pair()
        self.connectors_port, self.query_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "LINKED_ARTIFACTS_DATA_DIR": str(self.data),
            "LINKED_ARTIFACTS_KAFKA_PORT": str(self.kafka_port),
            "LINKED_ARTIFACTS_KAFKA_CONTROLLER_PORT": str(free_port()),
            "LINKED_ARTIFACTS_REGISTRY_PORT": str(self.registry_port),
            "LINKED_ARTIFACTS_CONNECTORS_PORT": str(self.connectors_port),
            "LINKED_ARTIFACTS_QUERY_PORT": str(self.query_port),
        }
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def registry(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}/apis/ccompat/v7"

    def start(self, timeout: float = 300) -> float:
        started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(BIN / "linked-artifacts"), "up"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if "Press Ctrl-C to stop" in line:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                break
        raise AssertionError("up did not start:\n" + "".join(self.output[-30:]))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        assert self.proc.stdout is not None
        self.output.append(self.proc.stdout.read())
        # Children get SIGTERM from the kernel when `up` dies; wait until they released their ports.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ports = (self.kafka_port, self.registry_port, self.connectors_port, self.query_port)
            if all(port_is_free("127.0.0.1", port) for port in ports):
                return
            time.sleep(0.5)
        # Still shutting down (a worker whose broker vanished can take long): the next `up` waits for the
        # previous run's children and stops stragglers itself (data/children.pids), which start() exercises.


async def _produce(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait(topic, f"m{i}".encode(), key=f"k{i}".encode())
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="restart-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen = 0
    while seen < 4:
        batch = await consumer.getmany(timeout_ms=2000, max_records=4 - seen)
        seen += sum(len(v) for v in batch.values())
    await consumer.commit()
    await consumer.stop()


async def _read_back(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="restart-test",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    remaining = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and remaining < 6:
        batch = await consumer.getmany(timeout_ms=1000)
        remaining += sum(len(v) for v in batch.values())
    await consumer.stop()
    everything = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await everything.start()
    total = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and total < 10:
        batch = await everything.getmany(timeout_ms=1000)
        total += sum(len(v) for v in batch.values())
    await everything.stop()
    return remaining, total


def _tokens(data: Path) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((data / "secrets.json").read_text())
    return loaded


def _post_event(up: Up) -> None:
    token = _tokens(up.data)["cloudevents_token"]
    event = {
        "specversion": "1.0",
        "id": "restart-1",
        "source": "//restart.test",
        "time": "2026-05-05T10:00:00Z",
        "type": "dev.linkedartifacts.deployment.v1",
        "data": {
            "digest": "sha256:" + "7" * 64,
            "logical_environment": "prod",
            "cluster": "c1",
            "deployment_name": "svc",
        },
    }
    response = httpx.post(
        f"http://127.0.0.1:{up.connectors_port}/events/cloudevents",
        json=event,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/cloudevents+json"},
    )
    assert response.status_code == 202, response.text


def _rows(up: Up) -> int:
    token = _tokens(up.data)["query_token"]
    response = httpx.post(
        f"http://127.0.0.1:{up.query_port}/v1/sql",
        json={"sql": "SELECT count() FROM events"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    return int(response.json()["rows"][0][0])


def _wait_rows(up: Up, at_least: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = _rows(up)
        if count >= at_least:
            return count
        time.sleep(0.5)
    raise AssertionError("the event never reached ClickHouse")


def test_killed_up_restarts_with_topics_offsets_schemas_and_rows(tmp_path: Path) -> None:
    up = Up(tmp_path)
    up.start()
    # The summary names where the pages are, and where the token is rather than the token itself.
    pages = next(line for line in up.output if "web pages" in line)
    assert f":{up.env['LINKED_ARTIFACTS_QUERY_PORT']}/" in pages and "query_token" in pages and "token=" not in pages
    asyncio.run(_produce(up.bootstrap, "restart-probe"))
    schema = {"type": "record", "name": "Probe", "fields": [{"name": "a", "type": "string"}]}
    schema_id = SchemaRegistry(up.registry).register("restart-probe-value", schema)
    _post_event(up)
    rows = _wait_rows(up, 1)
    up.kill(signal.SIGKILL)

    up.start()
    remaining, total = asyncio.run(_read_back(up.bootstrap, "restart-probe"))
    assert (remaining, total) == (6, 10), "committed offsets or messages were lost"
    registry = SchemaRegistry(up.registry)
    assert "restart-probe-value" in registry.subjects()
    assert registry.register("restart-probe-value", schema) == schema_id
    assert "la.artifact-events-value" in registry.subjects()
    assert _rows(up) == rows, "ClickHouse rows were lost or doubled by the restart"
    _post_event(up)  # a redelivery after the restart adds nothing
    time.sleep(2)
    assert _rows(up) == rows
    up.kill(signal.SIGTERM)
    assert "stopped." in "".join(up.output)
