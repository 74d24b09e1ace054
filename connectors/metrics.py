"""Prometheus metrics of the connectors, on a registry of their own (one per app, so tests can build many)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from linked_artifacts import gc_tuning

# Produce latency: a healthy local broker acks in a few ms; the top bucket is the publish deadline (8 s).
PRODUCE_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0)


class ConnectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        gc_tuning.register_threshold_gauge(self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "linked_artifacts_connector_requests",
            "HTTP requests answered, by route template and status.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.rejects = Counter(
            "linked_artifacts_connector_rejects",
            "Requests refused, by endpoint, reason (auth, size, content_type, input, unavailable) and code.",
            ["endpoint", "reason", "code"],
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "linked_artifacts_connector_produce_seconds",
            "Time from handing records to the publisher until the broker acknowledged all of them.",
            ["what"],
            buckets=PRODUCE_BUCKETS,
            registry=self.registry,
        )
        self.events_published = Counter(
            "linked_artifacts_connector_events_published",
            "Canonical events acknowledged by Kafka, by kind and source.",
            ["kind", "source"],
            registry=self.registry,
        )
        self.attestations_published = Counter(
            "linked_artifacts_connector_attestations_published",
            "Raw attestations acknowledged by Kafka.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "linked_artifacts_connector_dead_letters",
            "Refused inputs written to the dead-letter topic, by endpoint and error code.",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.dead_letter_failures = Counter(
            "linked_artifacts_connector_dead_letter_failures",
            "Refused inputs that could not be dead-lettered (the sender got 503 instead).",
            ["endpoint"],
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
