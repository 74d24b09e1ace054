"""Session fixtures: a real Kafka broker, a real schema registry, and ClickHouse.

Where they come from, first match wins:
1. external endpoints from the environment (LINKED_ARTIFACTS_TEST_KAFKA, LINKED_ARTIFACTS_TEST_REGISTRY,
   LINKED_ARTIFACTS_TEST_CLICKHOUSE), for running the suite against a shared environment;
2. testcontainers, when a Docker engine answers (the same images as docker-compose.yml);
3. the project's own local JVM processes (the default here: there is no Docker engine), on free ports
   and a throw-away data directory, so a running `linked-artifacts up` is never disturbed.
The stack starts only when a test asks for it, so `pytest tests/unit` needs no JVM.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from linked_artifacts import bootstrap
from linked_artifacts.settings import Settings, ensure_secrets
from linked_artifacts.stack.local import Infrastructure

# Ports handed out in this session: a port chosen but not bound yet is not handed out twice.
_HANDED_OUT: set[int] = set()
# Above the project's defaults (18000-19093), below the kernel's ephemeral range (see free_port).
_PORTS_FROM = 20_000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, pair: bool = False) -> int:
    """A free port below the kernel's ephemeral range (with ``pair``, p+1 free too).

    Port 0 would hand out an ephemeral port, one the kernel also gives outgoing connections. A service
    restarted on its port then found it taken by some process's connection: the registry's management port
    did, once, in tests/fault/test_up_restart.py."""
    last = _ephemeral_start() - 2
    if last <= _PORTS_FROM:
        raise RuntimeError(f"no room for test ports below the ephemeral range (starts at {last + 2})")
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randint(_PORTS_FROM, last)
        wanted = (port, port + 1) if pair else (port,)
        if any(p in _HANDED_OUT or not _bindable(p) for p in wanted):
            continue
        _HANDED_OUT.update(wanted)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def free_port_pair() -> int:
    """A port p with p+1 also free (the registry's management interface uses p+1)."""
    return free_port(pair=True)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(["docker", "info"], capture_output=True, timeout=10, check=False).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Stack:
    """What integration and fault tests get: settings that point at live parts, and levers to break them."""

    settings: Settings
    mode: str
    infra: Infrastructure | None = None
    containers: tuple[Any, ...] = ()

    def stop_kafka(self) -> None:
        assert self.infra is not None and self.infra.kafka is not None, "only the local stack can stop Kafka"
        self.infra.kafka.stop()

    def kill_kafka(self) -> None:
        assert self.infra is not None and self.infra.kafka is not None
        self.infra.kafka.kill()

    def start_kafka(self) -> None:
        assert self.infra is not None and self.infra.kafka is not None
        self.infra.kafka.start()

    def restart_registry(self) -> None:
        assert self.infra is not None and self.infra.registry is not None
        self.infra.registry.stop()
        self.infra.registry.start()


def _base_settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir=data_dir,
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        registry_port=free_port_pair(),
        connectors_port=free_port(),
        query_port=free_port(),
        topic_prefix="test.",
    )


def _containers_stack(settings: Settings) -> Stack:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs
    from testcontainers.kafka import KafkaContainer

    kafka = KafkaContainer(f"apache/kafka:{settings.kafka_version}").with_kraft()
    kafka.start()
    registry = DockerContainer(f"apicurio/apicurio-registry:{settings.registry_version}").with_exposed_ports(
        8080
    )
    registry.start()
    wait_for_logs(registry, "Listening on", timeout=120)
    url = f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}/apis/ccompat/v7"
    live = settings.model_copy(
        update={"kafka_bootstrap_servers": kafka.get_bootstrap_server(), "registry_url": url}
    )
    return Stack(live, "testcontainers", containers=(kafka, registry))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("stack")
    settings = _base_settings(data_dir)
    external_kafka = os.environ.get("LINKED_ARTIFACTS_TEST_KAFKA")
    if external_kafka:
        live = settings.model_copy(
            update={
                "kafka_bootstrap_servers": external_kafka,
                "registry_url": os.environ["LINKED_ARTIFACTS_TEST_REGISTRY"],
                "clickhouse_url": os.environ.get("LINKED_ARTIFACTS_TEST_CLICKHOUSE"),
            }
        )
        handle = Stack(live, "external")
    elif docker_available():
        handle = _containers_stack(settings)
    else:
        infra = Infrastructure(settings, progress=lambda line: print(f"[stack] {line}"))  # noqa: T201
        infra.prepare()
        handle = Stack(infra.start(), "local", infra=infra)
    handle.settings, _ = ensure_secrets(handle.settings)
    bootstrap.bootstrap(handle.settings)
    try:
        yield handle
    finally:
        if handle.infra is not None:
            handle.infra.stop()
        for container in handle.containers:
            container.stop()


CLICKHOUSE_SERVER_VARIABLES = ("LINKED_ARTIFACTS_TEST_CLICKHOUSE", "LINKED_ARTIFACTS_CLICKHOUSE_URL")


@pytest.fixture(scope="session")
def clickhouse_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one ClickHouse every test in this process shares: a ClickHouse server when one is configured
    (LINKED_ARTIFACTS_TEST_CLICKHOUSE, else LINKED_ARTIFACTS_CLICKHOUSE_URL: http://user:pass@host:8123),
    embedded chDB in a throw-away directory otherwise.

    Tests isolate themselves with a database each (named with the process id and a random part, dropped
    at the end), never with a path each: chDB holds one data path per process for the life of the process
    ("EmbeddedServer already initialized with path ..."), and on a shared server several runs must not
    collide.
    """
    for name in CLICKHOUSE_SERVER_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@dataclass
class Services:
    """The project's own worker and connectors processes, running against the test stack."""

    settings: Settings
    worker: Any
    connectors: Any

    @property
    def connectors_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.connectors_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.query_port}"

    def token(self, name: str) -> str:
        value = self.settings.secret(name)
        assert value is not None
        return value


def service_env(settings: Settings) -> dict[str, str]:
    from linked_artifacts.settings import GENERATED_SECRETS

    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKED_ARTIFACTS_")}
    values = {
        "DATA_DIR": str(settings.data_dir),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_servers,
        "REGISTRY_URL": settings.schema_registry_url,
        "CONNECTORS_PORT": str(settings.connectors_port),
        "QUERY_PORT": str(settings.query_port),
        "TOPIC_PREFIX": settings.topic_prefix,
        "WORKER_ID": settings.worker_id,
        "SINK_FLUSH_SECONDS": str(settings.sink_flush_seconds),
        "WORKER_STATE_CACHE_STATES": str(settings.worker_state_cache_states),
        "WORKER_STATE_MAX_BYTES": str(settings.worker_state_max_bytes),
        "LOG_LEVEL": "INFO",
    }
    if settings.clickhouse_url:
        values["CLICKHOUSE_URL"] = settings.clickhouse_url
    for name in GENERATED_SECRETS:
        secret = settings.secret(name)
        if secret is not None:
            values[name.upper()] = secret
    env.update({f"LINKED_ARTIFACTS_{k}": v for k, v in values.items()})
    return env


def start_service(settings: Settings, name: str, *args: str, ready_path: str, port: int) -> Any:
    import sys
    import time

    import httpx

    from linked_artifacts.stack.process import ManagedProcess

    proc = ManagedProcess(
        name,
        [sys.executable, "-m", "linked_artifacts.cli", name, *args],
        log_file=settings.data_dir / "logs" / f"{name}-{port}.log",
        env=service_env(settings),
    )
    proc.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.log_tail(40)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{name} not ready:\n{proc.log_tail(40)}")


@pytest.fixture(scope="session")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    data_dir = tmp_path_factory.mktemp("services")
    settings = stack.settings.model_copy(
        update={
            "data_dir": data_dir,
            "connectors_port": free_port(),
            "query_port": free_port(),
            "worker_id": "e2e-worker",
            "sink_flush_seconds": 0.5,
            # Far below the story's keys, so its states are dropped and decoded again from the table between
            # batches: the story's final state must not depend on what the worker kept decoded.
            "worker_state_cache_states": 3,
        }
    )
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    connectors = start_service(settings, "connectors", ready_path="/healthz", port=settings.connectors_port)
    try:
        yield Services(settings, worker, connectors)
    finally:
        connectors.stop()
        worker.stop()
