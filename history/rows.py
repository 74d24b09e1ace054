"""ArtifactEvent -> one row of the ``events`` history table, and the idempotent batch insert.

The sink calls :func:`insert_events` once per deterministic batch (fixed Kafka offset range per
partition) with ``dedup_token = f"{topic}:{partition}:{first}-{last}"``. A retry of the same batch
carries the same token and adds no rows (``non_replicated_deduplication_window`` on every table, see
migration 0001); the current-state tables fed by materialized views are deduplicated with it.

Flattening rules (the columns are documented in ``migrations/0001_events.sql``):

- absent optional strings become ``''``; a missing workflow run id becomes ``0``;
- source repositories (``owner/name``) are lower-cased, as ``repo_key`` does, so a build and a
  repository alert name the same repository whatever case each source used;
- ``storage_registry_host`` is the lower-case host of ``registry_url`` (computed here, not in SQL,
  so ``artifact-registry-url:`` filters compare hosts the same way on every ClickHouse version);
- a ``moved`` storage event fills ``storage_vacated_*`` with the location it left, which the
  current-state views record as deleted;
- ``status_rank`` breaks ties between events with the same event time: the terminal state wins
  (deleted > eol > active; decommissioned > deployed; fixed > dismissed > open;
  completed > in_progress > queued/requested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import urlsplit

from history.client import Warehouse
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import ArtifactEvent

# Column order and types of `events` as this module writes them; a unit test compares them with
# DESCRIBE TABLE, so a migration that changes the table must change this too.
EVENT_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("event_id", "String"),
    ("key", "String"),
    ("kind", "LowCardinality(String)"),
    ("source", "LowCardinality(String)"),
    ("digest", "String"),
    ("event_time", "DateTime64(6, 'UTC')"),
    ("ingest_time", "DateTime64(6, 'UTC')"),
    ("delivery_id", "String"),
    ("status_rank", "UInt8"),
    ("storage_registry", "LowCardinality(String)"),
    ("storage_registry_url", "LowCardinality(String)"),
    ("storage_registry_host", "LowCardinality(String)"),
    ("storage_repository", "String"),
    ("storage_path", "String"),
    ("storage_status", "LowCardinality(String)"),
    ("storage_action", "LowCardinality(String)"),
    ("storage_tags", "Array(String)"),
    ("storage_vacated_repository", "String"),
    ("storage_vacated_path", "String"),
    ("build_repository", "String"),
    ("build_run_id", "UInt64"),
    ("build_commit", "String"),
    ("build_status", "LowCardinality(String)"),
    ("build_conclusion", "LowCardinality(String)"),
    ("build_builder_id", "LowCardinality(String)"),
    ("build_attestation_sha256", "String"),
    ("deployment_logical_environment", "LowCardinality(String)"),
    ("deployment_physical_environment", "LowCardinality(String)"),
    ("deployment_cluster", "LowCardinality(String)"),
    ("deployment_name", "String"),
    ("deployment_status", "LowCardinality(String)"),
    ("deployment_runtime_risks", "Array(LowCardinality(String))"),
    ("deployment_risks_asserted_by", "LowCardinality(String)"),
    ("link_index_digest", "String"),
    ("link_platform_digest", "String"),
    ("link_platform", "LowCardinality(String)"),
    ("alert_key", "String"),
    ("alert_scope", "LowCardinality(String)"),
    ("alert_repository", "String"),
    ("alert_vulnerability_id", "String"),
    ("alert_severity", "LowCardinality(String)"),
    ("alert_cvss", "Nullable(Float64)"),
    ("alert_epss", "Nullable(Float64)"),
    ("alert_state", "LowCardinality(String)"),
    ("alert_tool", "LowCardinality(String)"),
    ("alert_package", "String"),
    ("alert_title", "String"),
    ("body", "String"),
)
COLUMN_NAMES: Final[tuple[str, ...]] = tuple(name for name, _ in EVENT_COLUMNS)
COLUMN_TYPES: Final[tuple[str, ...]] = tuple(kind for _, kind in EVENT_COLUMNS)

_STATUS_RANK: Final[dict[str, dict[str, int]]] = {
    "storage": {"active": 0, "eol": 1, "deleted": 2},
    "deployment": {"deployed": 0, "decommissioned": 1},
    "alert": {"open": 0, "dismissed": 1, "fixed": 2},
    "build": {"requested": 0, "waiting": 0, "pending": 0, "queued": 0, "in_progress": 1, "completed": 2},
}


class InvalidEvent(LinkedArtifactsError):
    """An event whose body does not match its kind. A bug upstream, so it is dead-lettered."""

    code = "invalid_event"
    dead_letter = True


def registry_host(registry_url: str) -> str:
    """Lower-case host of a registry URL; a URL without a scheme is read as a host name."""
    text = registry_url.strip()
    if not text:
        return ""
    parts = urlsplit(text if "://" in text else "https://" + text)
    return (parts.hostname or "").lower()


def _text(value: str | None) -> str:
    return value if value is not None else ""


def _repo(value: str | None) -> str:
    return value.strip().lower() if value else ""


def _empty_row(event: ArtifactEvent, status: str) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "key": event.key,
        "kind": event.kind,
        "source": event.source,
        "digest": _text(event.digest),
        "event_time": event.event_time,
        "ingest_time": event.ingest_time,
        "delivery_id": event.delivery_id,
        "status_rank": _STATUS_RANK.get(event.kind, {}).get(status, 0),
    }


def _storage(event: ArtifactEvent, row: dict[str, Any]) -> None:
    body = event.storage
    assert body is not None  # noqa: S101 - checked by event_row
    vacated_repository = vacated_path = ""
    if body.action == "moved" and (body.previous_repository or body.previous_path):
        vacated_repository = body.previous_repository or body.repository
        vacated_path = body.previous_path if body.previous_path is not None else _text(body.path)
        if (vacated_repository, vacated_path) == (body.repository, _text(body.path)):
            # A "move" onto itself left nothing; recording the location as both kept and left would
            # give one event two states for the same location.
            vacated_repository = vacated_path = ""
    row.update(
        storage_registry=body.registry,
        storage_registry_url=body.registry_url,
        storage_registry_host=registry_host(body.registry_url),
        storage_repository=body.repository,
        storage_path=_text(body.path),
        storage_status=body.status,
        storage_action=body.action,
        storage_tags=list(body.tags),
        storage_vacated_repository=vacated_repository,
        storage_vacated_path=vacated_path,
        body=body.model_dump_json(),
    )


def _build(event: ArtifactEvent, row: dict[str, Any]) -> None:
    body = event.build
    assert body is not None  # noqa: S101 - checked by event_row
    row.update(
        build_repository=_repo(body.repository),
        build_run_id=body.workflow_run_id if body.workflow_run_id and body.workflow_run_id > 0 else 0,
        build_commit=_text(body.commit),
        build_status=_text(body.status),
        build_conclusion=_text(body.conclusion),
        build_builder_id=_text(body.builder_id),
        build_attestation_sha256=_text(body.attestation_sha256),
        body=body.model_dump_json(),
    )


def _deployment(event: ArtifactEvent, row: dict[str, Any]) -> None:
    body = event.deployment
    assert body is not None  # noqa: S101 - checked by event_row
    row.update(
        deployment_logical_environment=body.logical_environment,
        deployment_physical_environment=body.physical_environment,
        deployment_cluster=body.cluster,
        deployment_name=body.deployment_name,
        deployment_status=body.status,
        # Sorted and unique: the same assertion always gives the same row (dedup tokens, argMax ties).
        deployment_runtime_risks=sorted(set(body.runtime_risks)),
        deployment_risks_asserted_by=_text(body.risks_asserted_by),
        body=body.model_dump_json(),
    )


def _link(event: ArtifactEvent, row: dict[str, Any]) -> None:
    body = event.link
    assert body is not None  # noqa: S101 - checked by event_row
    row.update(
        link_index_digest=body.index_digest,
        link_platform_digest=body.platform_digest,
        link_platform=_text(body.platform),
        body=body.model_dump_json(),
    )


def _alert(event: ArtifactEvent, row: dict[str, Any]) -> None:
    body = event.alert
    assert body is not None  # noqa: S101 - checked by event_row
    row.update(
        alert_key=body.alert_key,
        alert_scope=body.scope,
        alert_repository=_repo(body.repository),
        alert_vulnerability_id=body.vulnerability_id,
        alert_severity=body.severity,
        alert_cvss=body.cvss_score,
        alert_epss=body.epss,
        alert_state=body.state,
        alert_tool=body.tool,
        alert_package=_text(body.package_name),
        alert_title=_text(body.title),
        body=body.model_dump_json(),
    )


_FILL = {"storage": _storage, "build": _build, "deployment": _deployment, "link": _link, "alert": _alert}
_DEFAULTS: Final[dict[str, Any]] = {
    name: (
        []
        if kind.startswith("Array")
        else None
        if kind.startswith("Nullable")
        else 0
        if kind.startswith("UInt")
        else ""
    )
    for name, kind in EVENT_COLUMNS
    if name not in ("event_time", "ingest_time")
}


def _status_of(event: ArtifactEvent) -> str:
    body = getattr(event, event.kind)
    status = getattr(body, "state" if event.kind == "alert" else "status", None)
    return status if isinstance(status, str) else ""


def event_row(event: ArtifactEvent) -> tuple[Any, ...]:
    """The ``events`` row of one event, in :data:`COLUMN_NAMES` order."""
    if getattr(event, event.kind) is None:
        raise InvalidEvent(
            f"{event.kind}: event {event.event_id} has kind {event.kind} but no {event.kind} body", field=event.kind
        )
    row: dict[str, Any] = dict(_DEFAULTS)
    row.update(_empty_row(event, _status_of(event)))
    _FILL[event.kind](event, row)
    return tuple(row[name] for name in COLUMN_NAMES)


def insert_events(warehouse: Warehouse, events: Sequence[ArtifactEvent], *, dedup_token: str) -> int:
    """Insert one batch into ``events``; returns the number of rows sent.

    ``dedup_token`` must identify the batch (same events, same order) across retries: a repeated call
    with the same token adds nothing. Raises ``WarehouseError`` (retriable) when ClickHouse fails;
    the caller retries with the same batch and token before committing Kafka offsets.
    """
    if not dedup_token:
        raise ValueError("dedup_token must be a non-empty batch identity")
    if not events:
        return 0
    rows = [event_row(event) for event in events]
    warehouse.insert(
        "events",
        rows,
        column_names=COLUMN_NAMES,
        column_type_names=COLUMN_TYPES,
        settings={"insert_deduplication_token": dedup_token, "insert_deduplicate": 1},
    )
    return len(rows)
