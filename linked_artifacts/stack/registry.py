"""Apicurio Registry (Confluent-compatible API at /apis/ccompat/v7) as a local JVM process.

Storage is an H2 database file under the data directory, so registered schemas, and above all their ids
(which every framed Kafka message refers to), survive restarts.
"""

from __future__ import annotations

import time

import httpx

from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings
from linked_artifacts.stack import maven
from linked_artifacts.stack.java import find_java
from linked_artifacts.stack.ports import require_free
from linked_artifacts.stack.process import ManagedProcess


def _minimum_java(version: str) -> int:
    # Apicurio 3.0.x is built for Java 17; 3.1 and later for Java 21.
    major, minor = (int(x) for x in version.split(".")[:2])
    return 17 if (major, minor) <= (3, 0) else 21


class LocalRegistry:
    def __init__(self, settings: Settings, *, progress: maven.Progress) -> None:
        self.settings = settings
        self.progress = progress
        self.data = settings.data_dir / "registry"
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.registry_port}/apis/ccompat/v7"

    def prepare(self) -> None:
        version = self.settings.registry_version
        self.java = find_java(
            minimum=_minimum_java(version),
            explicit=self.settings.registry_java,
            purpose=f"Apicurio Registry {version}",
        )
        require_free(
            "127.0.0.1",
            self.settings.registry_port,
            what="the schema registry",
            setting="LINKED_ARTIFACTS_REGISTRY_PORT",
        )
        require_free(
            "127.0.0.1",
            self.settings.registry_port + 1,
            what="the registry's management interface",
            setting="LINKED_ARTIFACTS_REGISTRY_PORT",
        )
        self.home = maven.registry_home(self.settings.cache_dir, version, self.progress)
        self.jar = maven.registry_jar(self.home)

    def start(self, *, timeout: float = 120.0) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        port = self.settings.registry_port
        argv = [
            self.java,
            f"-Xmx{self.settings.registry_heap}",
            "-Xms64m",
            # Start-up speed over peak throughput: the registry serves a handful of lookups per process.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dquarkus.http.port={port}",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.management.port={port + 1}",
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dapicurio.datasource.url=jdbc:h2:file:{(self.data / 'registry').resolve()}",
            "-Dapicurio.datasource.jdbc.initial-size=2",
            "-Dapicurio.datasource.jdbc.min-size=2",
            "-Dapicurio.datasource.jdbc.max-size=10",
            "-Dquarkus.log.level=WARN",
            '-Dquarkus.log.category."io.quarkus".level=INFO',
            "-jar",
            str(self.jar),
        ]
        self.process = ManagedProcess(
            "registry", argv, log_file=self.settings.data_dir / "logs" / "registry.log", cwd=self.data
        )
        self.process.start()
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and not self.process.alive():
                raise StackError(f"the schema registry exited during start-up:\n{self.process.log_tail()}")
            if registry_answers(self.url):
                return
            time.sleep(0.5)
        raise StackError(
            f"the schema registry did not become ready within {timeout:.0f}s. "
            f"Its log: {self.settings.data_dir / 'logs' / 'registry.log'}"
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


def registry_answers(url: str, *, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/subjects", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
