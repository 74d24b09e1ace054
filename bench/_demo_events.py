"""The demo organisation (``linked_artifacts.demo``) as canonical events, made by the connectors' own parsers,
straight into a warehouse: no Kafka, no HTTP, the same rows ``linked-artifacts demo`` leaves behind.

For the web pages' benchmark and browser tests, which need the demo organisation's data in an embedded
warehouse within seconds. Ingest times are spread over the minutes before ``now``, as a demo run sending
at full speed leaves them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from connectors.app import load_parsers
from connectors.base import Delivery
from connectors.jsonlimits import parse_json
from history.client import Warehouse
from history.rows import insert_events
from linked_artifacts.demo.org import Org, build_org
from linked_artifacts.demo.requests import Credentials, build_plan
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings

# Rows per insert, as the sink batches them (LINKED_ARTIFACTS_SINK_BATCH_ROWS).
BATCH_ROWS = 5_000


@dataclass(frozen=True)
class DemoEvents:
    org: Org
    events: tuple[ArtifactEvent, ...]
    attestations: dict[str, bytes]  # sha256 hex -> the original bytes, as the attestations topic keeps them


def demo_events(
    *, seed: int, now: datetime, target_events: int, ingest_span: timedelta = timedelta(minutes=20)
) -> DemoEvents:
    """Every request of the demo run through its endpoint's parser, received over ``ingest_span`` before now."""
    org = build_org(seed=seed, now=now, target_events=target_events)
    parsers = load_parsers()
    limits = Settings(data_dir=Path("/nonexistent"))
    requests = list(build_plan(org, Credentials.placeholder()))
    events: list[ArtifactEvent] = []
    attestations: dict[str, bytes] = {}
    step = ingest_span / max(1, len(requests))
    for index, request in enumerate(requests):
        payload = parse_json(request.body, max_depth=limits.max_json_depth, max_items=limits.max_json_items)
        delivery = Delivery(
            endpoint=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.body,
            received_at=now - ingest_span + step * index,
            query=dict(request.query),
            path_params=dict(request.path_params),
        )
        result = parsers[request.endpoint](delivery, payload)
        events.extend(result.events)
        for raw in result.attestations:
            attestations[hashlib.sha256(raw).hexdigest()] = raw
    return DemoEvents(org, tuple(events), attestations)


def load(warehouse: Warehouse, events: tuple[ArtifactEvent, ...] | list[ArtifactEvent], *, label: str) -> None:
    """Insert in sink-sized batches; ``label`` makes the dedup tokens unique to this load."""
    for start in range(0, len(events), BATCH_ROWS):
        insert_events(warehouse, events[start:start + BATCH_ROWS], dedup_token=f"{label}:{start}")
