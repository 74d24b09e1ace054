"""Apache Kafka in KRaft mode as a local JVM process, with a durable data directory."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from pathlib import Path

from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings
from linked_artifacts.stack import maven
from linked_artifacts.stack.java import find_java
from linked_artifacts.stack.ports import require_free
from linked_artifacts.stack.process import ManagedProcess

# Kafka 4 needs Java 17 for the broker.
KAFKA_JAVA = 17

_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
"""


def _server_properties(settings: Settings, data: Path) -> str:
    host = "127.0.0.1"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{settings.kafka_controller_port}",
        "listeners": f"PLAINTEXT://{host}:{settings.kafka_port},CONTROLLER://{host}:{settings.kafka_controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{settings.kafka_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": str(settings.topic_partitions),
        # Topics are created by the project with explicit settings, never implicitly by a typo'd consumer.
        "auto.create.topics.enable": "false",
        # One node: internal topics cannot be replicated; few partitions keep start-up and file counts small.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # 2 cores: a few threads are enough and leave CPU for the Python processes.
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(8 * 1024 * 1024 + 1024),
        "replica.fetch.max.bytes": str(8 * 1024 * 1024 + 1024),
    }
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _cluster_id() -> str:
    """A random KRaft cluster id (22 URL-safe base64 characters). Never one starting with '-': the storage
    tool's argument parser reads that as an option and fails ("--cluster-id: expected one argument"), as one
    in 64 first runs did; Kafka's own ``Uuid.randomUuid`` skips those ids for the same reason."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class LocalKafka:
    def __init__(self, settings: Settings, *, progress: maven.Progress) -> None:
        self.settings = settings
        self.progress = progress
        self.home = settings.data_dir / "kafka"
        self.data = self.home / "data"
        self.process: ManagedProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

    def prepare(self) -> None:
        """Check prerequisites and resolve artifacts; everything that can fail before a process starts."""
        self.java = find_java(minimum=KAFKA_JAVA, purpose="Apache Kafka 4")
        require_free(
            "127.0.0.1", self.settings.kafka_port, what="Kafka", setting="LINKED_ARTIFACTS_KAFKA_PORT"
        )
        require_free(
            "127.0.0.1",
            self.settings.kafka_controller_port,
            what="the Kafka controller",
            setting="LINKED_ARTIFACTS_KAFKA_CONTROLLER_PORT",
        )
        self.classpath = maven.kafka_classpath(
            self.settings.cache_dir, self.settings.kafka_version, self.progress
        )

    def _java_argv(self, main: str, *args: str, heap: str) -> list[str]:
        return [
            self.java,
            f"-Xmx{heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.yaml'}",
            "-cp",
            self.classpath,
            main,
            *args,
        ]

    def _format_if_new(self, config: Path) -> None:
        if (self.data / "meta.properties").is_file():
            return
        self.progress("formatting a new KRaft log directory")
        fmt = ManagedProcess(
            "kafka-format",
            self._java_argv(
                "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config), heap="256m"
            ),
            log_file=self.settings.data_dir / "logs" / "kafka-format.log",
        )
        fmt.start()
        if fmt.wait(timeout=120) != 0:
            raise StackError(f"formatting Kafka storage failed:\n{fmt.log_tail()}")

    def start(self, *, timeout: float = 90.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        config.write_text(_server_properties(self.settings, self.data))
        (self.home / "log4j2.yaml").write_text(_LOG4J)
        self._format_if_new(config)
        self.process = ManagedProcess(
            "kafka",
            self._java_argv("kafka.Kafka", str(config), heap=self.settings.kafka_heap),
            log_file=self.settings.data_dir / "logs" / "kafka.log",
        )
        self.process.start()
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and not self.process.alive():
                raise StackError(f"Kafka exited during start-up:\n{self.process.log_tail()}")
            if asyncio.run(kafka_answers(self.bootstrap)):
                return
            time.sleep(0.5)
        raise StackError(
            f"Kafka did not become ready within {timeout:.0f}s. "
            f"Its log: {self.settings.data_dir / 'logs' / 'kafka.log'}"
        )

    def stop(self) -> None:
        if self.process is not None:
            # Controlled shutdown flushes logs and lets the next start skip log recovery.
            self.process.stop(timeout=60)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


async def kafka_answers(bootstrap: str, *, timeout: float = 3.0) -> bool:
    """True when the broker serves metadata (a listening port alone is not enough)."""
    from aiokafka.admin import AIOKafkaAdminClient

    # Polling a starting broker: aiokafka's "Unable connect" errors are expected here, not news.
    quiet = logging.getLogger("aiokafka")
    previous = quiet.level
    quiet.setLevel(logging.CRITICAL)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not ready yet"
        return False
    finally:
        try:
            await admin.close()
        except Exception:  # noqa: BLE001, S110 - closing a half-open client
            pass
        quiet.setLevel(previous)
