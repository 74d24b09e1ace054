"""The infrastructure half of the stack: Kafka and the registry, local or external."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from linked_artifacts.errors import StackError
from linked_artifacts.settings import Settings
from linked_artifacts.stack.kafka import LocalKafka, kafka_answers
from linked_artifacts.stack.maven import Progress
from linked_artifacts.stack.registry import LocalRegistry, registry_answers


@dataclass
class Part:
    name: str
    where: str
    mode: str  # "local" or "external"
    seconds: float = 0.0


@dataclass
class Infrastructure:
    """Starts what is not configured as external, checks what is, and stops what it started."""

    settings: Settings
    progress: Progress
    parts: list[Part] = field(default_factory=list)
    kafka: LocalKafka | None = None
    registry: LocalRegistry | None = None

    def prepare(self) -> None:
        """Everything that can fail before any process starts: Java, Maven artifacts, free ports."""
        if self.settings.kafka_bootstrap_servers is None:
            self.kafka = LocalKafka(self.settings, progress=self.progress)
            self.kafka.prepare()
        if self.settings.registry_url is None:
            self.registry = LocalRegistry(self.settings, progress=self.progress)
            self.registry.prepare()

    def start(self) -> Settings:
        """Start or reach every part; returns settings that point at them."""
        settings = self.settings
        started = time.monotonic()
        if self.kafka is not None:
            self.progress(f"starting Kafka {settings.kafka_version} (KRaft) on {self.kafka.bootstrap}")
            self.kafka.start()
            self.parts.append(Part("kafka", self.kafka.bootstrap, "local", time.monotonic() - started))
        else:
            if not asyncio.run(kafka_answers(settings.kafka_servers, timeout=10)):
                raise StackError(
                    f"Kafka at {settings.kafka_servers} does not answer. Fix: check "
                    "LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS, or unset it to run a local broker."
                )
            self.parts.append(Part("kafka", settings.kafka_servers, "external"))
        started = time.monotonic()
        if self.registry is not None:
            self.progress(f"starting Apicurio Registry {settings.registry_version} on {self.registry.url}")
            self.registry.start()
            self.parts.append(Part("registry", self.registry.url, "local", time.monotonic() - started))
        else:
            if not registry_answers(settings.schema_registry_url, timeout=10):
                raise StackError(
                    f"the schema registry at {settings.schema_registry_url} does not answer. Fix: check "
                    "LINKED_ARTIFACTS_REGISTRY_URL, or unset it to run Apicurio locally."
                )
            self.parts.append(Part("registry", settings.schema_registry_url, "external"))
        return settings.model_copy(
            update={
                "kafka_bootstrap_servers": settings.kafka_servers,
                "registry_url": settings.schema_registry_url,
            }
        )

    def stop(self) -> None:
        # Reverse order: the registry's clients are gone before the broker goes.
        if self.registry is not None:
            self.registry.stop()
        if self.kafka is not None:
            self.kafka.stop()
