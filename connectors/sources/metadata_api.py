"""GitHub's artifact metadata API, served here with the same request and response bodies.

Three endpoints, one parser each:

- ``POST /orgs/{org}/artifacts/metadata/storage-record``: ``parse_storage_record``
- ``POST /orgs/{org}/artifacts/metadata/deployment-record``: ``parse_deployment_record``
- ``POST /orgs/{org}/artifacts/metadata/deployment-record/cluster/{cluster}``:
  ``parse_cluster_deployment_records``

Bodies are validated with the request models below, whose enumerations are exactly GitHub's. A failure is a
422 naming the JSON path of the first offending value (``deployments[2].runtime_risks[0]``).

The answer has GitHub's response shape. A record's ``id`` is derived from its natural key (a deployment slot,
or a storage location of a digest), so the same record always gets the same id, as GitHub's upsert does;
``created_at`` and ``updated_at`` are the receive time, since nothing here keeps earlier versions.

An event id is the natural key, the sha256 of the item's canonical JSON and the time of receipt. Nothing in
a post tells a client's retry from a new assertion with the same body (the same digest re-deployed to a
slot after a decommission), so every post is an observation of its own: one request parsed again (the
connectors' publish retry) keeps its id, a post received later gets a new one. A retried post is stored
twice, never lost; the record's id stays the same.

``github_repository`` is documented as a repository *name in the organisation*; it is stored as
``<org>/<name>`` so it joins with the other sources' owner/name form. Runtime risks are attributed to
``metadata-api``: the API does not say who asserted them.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from connectors.base import Delivery, InputError, ParseResult, event_id
from linked_artifacts.events import (
    ArtifactEvent,
    DeploymentBody,
    DeploymentStatus,
    RuntimeRisk,
    StorageBody,
    StorageStatus,
)

__all__ = [
    "ClusterDeploymentItem",
    "ClusterDeploymentRecordsRequest",
    "DeploymentRecordRequest",
    "StorageRecordRequest",
    "parse_cluster_deployment_records",
    "parse_deployment_record",
    "parse_storage_record",
]

_SOURCE: Literal["metadata-api"] = "metadata-api"
_DIGEST = re.compile(r"sha256:[0-9a-fA-F]{64}")
# JSON clients in JavaScript read numbers as doubles: ids stay below 2**53 so they survive a round trip.
_ID_BITS = 52
_REGISTRY_HOSTS = {
    "ghcr.io": "ghcr",
    "docker.io": "docker-hub",
    "index.docker.io": "docker-hub",
    "registry-1.docker.io": "docker-hub",
    "registry.hub.docker.com": "docker-hub",
}


def _check_digest(value: str) -> str:
    if not _DIGEST.fullmatch(value):
        raise ValueError("expected sha256:<64 hex digits>")
    return value.lower()


Digest = Annotated[str, AfterValidator(_check_digest)]
ArtifactName = Annotated[str, Field(min_length=1, max_length=255)]
NonEmpty = Annotated[str, Field(min_length=1)]


class _Request(BaseModel):
    # Unknown fields are ignored, as GitHub does, so a client written for a newer API version still works.
    model_config = ConfigDict(frozen=True, extra="ignore")


class StorageRecordRequest(_Request):
    """Body of ``POST .../storage-record``."""

    name: ArtifactName
    digest: Digest
    version: str | None = None
    artifact_url: str | None = None
    path: str | None = None
    registry_url: NonEmpty
    repository: str | None = None
    status: StorageStatus = "active"
    github_repository: str | None = None


class _DeploymentFields(_Request):
    name: ArtifactName
    digest: Digest
    version: str | None = None
    deployment_name: NonEmpty
    tags: dict[str, str] = Field(default_factory=dict)
    runtime_risks: list[RuntimeRisk] = Field(default_factory=list)
    github_repository: str | None = None


class DeploymentRecordRequest(_DeploymentFields):
    """Body of ``POST .../deployment-record``."""

    status: DeploymentStatus
    logical_environment: NonEmpty
    physical_environment: str | None = None
    cluster: str | None = None


class ClusterDeploymentItem(_DeploymentFields):
    """One entry of ``deployments`` in ``POST .../deployment-record/cluster/{cluster}``."""

    status: DeploymentStatus = "deployed"


class ClusterDeploymentRecordsRequest(_Request):
    """Body of ``POST .../deployment-record/cluster/{cluster}``."""

    logical_environment: NonEmpty
    physical_environment: str | None = None
    deployments: list[ClusterDeploymentItem]


_M = TypeVar("_M", bound=_Request)


# --- parsers --------------------------------------------------------------------------------------------


def parse_storage_record(delivery: Delivery, payload: Any) -> ParseResult:
    """One storage record: a storage event for its digest, answered in GitHub's response shape."""
    org = _path_param(delivery, "org")
    record = _validate(StorageRecordRequest, payload)
    natural_key = (
        "storage",
        org,
        record.digest,
        record.registry_url,
        record.repository or "",
        record.path or "",
    )
    storage = StorageBody(
        registry=_registry_kind(record.registry_url),
        registry_url=record.registry_url,
        repository=record.repository or "",
        path=record.path,
        artifact_url=record.artifact_url,
        name=record.name,
        version=record.version,
        status=record.status,
        action="record",
        github_repository=_qualified_repository(org, record.github_repository),
    )
    event = _event(delivery, record, natural_key, digest=record.digest, storage=storage)
    stamp = _stamp(delivery.received_at)
    row = {
        "id": _record_id(natural_key),
        **record.model_dump(mode="json"),
        "created_at": stamp,
        "updated_at": stamp,
    }
    return ParseResult(events=(event,), response={"total_count": 1, "storage_records": [row]})


def parse_deployment_record(delivery: Delivery, payload: Any) -> ParseResult:
    """One deployment record, upserted by its slot (logical, physical, cluster, deployment_name)."""
    org = _path_param(delivery, "org")
    record = _validate(DeploymentRecordRequest, payload)
    slot = _Slot(org, record.logical_environment, record.physical_environment or "", record.cluster or "")
    event, row = _deployment(delivery, slot, record)
    return ParseResult(events=(event,), response={"total_count": 1, "deployment_records": [row]})


def parse_cluster_deployment_records(delivery: Delivery, payload: Any) -> ParseResult:
    """Many deployment records of one cluster; the cluster comes from the path, not the body."""
    org = _path_param(delivery, "org")
    cluster = _path_param(delivery, "cluster")
    request = _validate(ClusterDeploymentRecordsRequest, payload)
    _check_cluster_items(request.deployments)
    slot = _Slot(org, request.logical_environment, request.physical_environment or "", cluster)
    pairs = [_deployment(delivery, slot, item) for item in request.deployments]
    return ParseResult(
        events=tuple(event for event, _ in pairs),
        response={"total_count": len(pairs), "deployment_records": [row for _, row in pairs]},
    )


# --- deployments ----------------------------------------------------------------------------------------


class _Slot(NamedTuple):
    """Everything of a deployment slot except its deployment_name."""

    org: str
    logical: str
    physical: str
    cluster: str


def _deployment(
    delivery: Delivery, slot: _Slot, item: DeploymentRecordRequest | ClusterDeploymentItem
) -> tuple[ArtifactEvent, dict[str, Any]]:
    natural_key = ("deployment", slot.org, slot.logical, slot.physical, slot.cluster, item.deployment_name)
    risks = sorted(set(item.runtime_risks))
    deployment = DeploymentBody(
        logical_environment=slot.logical,
        physical_environment=slot.physical,
        cluster=slot.cluster,
        deployment_name=item.deployment_name,
        status=item.status,
        runtime_risks=risks,
        risks_asserted_by=_SOURCE,
        name=item.name,
        version=item.version,
        tags=dict(item.tags),
        github_repository=_qualified_repository(slot.org, item.github_repository),
    )
    event = _event(delivery, item, natural_key, digest=item.digest, deployment=deployment)
    stamp = _stamp(delivery.received_at)
    row = {
        "id": _record_id(natural_key),
        "name": item.name,
        "digest": item.digest,
        "version": item.version,
        "status": item.status,
        "logical_environment": slot.logical,
        "physical_environment": slot.physical or None,
        "cluster": slot.cluster or None,
        "deployment_name": item.deployment_name,
        "tags": dict(item.tags),
        "runtime_risks": risks,
        "github_repository": item.github_repository,
        "attestation_id": None,
        "created_at": stamp,
        "updated_at": stamp,
    }
    return event, row


def _check_cluster_items(items: Sequence[ClusterDeploymentItem]) -> None:
    """GitHub's rules across the array: unique deployment_name; one name and version per digest."""
    names: dict[str, int] = {}
    first_of_digest: dict[str, int] = {}
    for index, item in enumerate(items):
        earlier = names.setdefault(item.deployment_name, index)
        if earlier != index:
            raise InputError(
                f"deployments[{index}].deployment_name: {item.deployment_name!r} repeats "
                f"deployments[{earlier}]; deployment_name must be unique in the array",
                field=f"deployments[{index}].deployment_name",
            )
        earlier = first_of_digest.setdefault(item.digest, index)
        for attribute in ("name", "version"):
            mine, theirs = getattr(item, attribute), getattr(items[earlier], attribute)
            if mine != theirs:
                raise InputError(
                    f"deployments[{index}].{attribute}: items with the same digest must have the same "
                    f"{attribute}; deployments[{earlier}] has {theirs!r}, this item has {mine!r}",
                    field=f"deployments[{index}].{attribute}",
                )


# --- shared ---------------------------------------------------------------------------------------------


def _event(
    delivery: Delivery,
    item: _Request,
    natural_key: tuple[str, ...],
    *,
    digest: str,
    storage: StorageBody | None = None,
    deployment: DeploymentBody | None = None,
) -> ArtifactEvent:
    return ArtifactEvent(
        # The time of receipt is part of the identity. A record carries no time or delivery id of its own,
        # so the same body posted again is a new assertion: a redeploy after a decommission is exactly such
        # a post. Without the time it got the first deployment's event id, the history kept only the first,
        # and ClickHouse disagreed with the state. A client's retry of a post is stored as a second
        # observation of the same record (same record id, later last_seen), never lost.
        event_id=event_id(
            _SOURCE, *natural_key, digest, _canonical_sha256(item), delivery.received_at.isoformat()
        ),
        key=digest,
        kind="storage" if storage is not None else "deployment",
        source=_SOURCE,
        digest=digest,
        # A record carries no time of its own: it states what is true when it is posted.
        event_time=delivery.received_at,
        ingest_time=delivery.received_at,
        # No delivery header exists; the raw body identifies a retry of the same request.
        delivery_id=delivery.body_sha256,
        storage=storage,
        deployment=deployment,
    )


def _validate(model: type[_M], payload: Any) -> _M:
    if not isinstance(payload, dict):
        raise InputError(f"body: expected a JSON object, got {type(payload).__name__}", field="body")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _input_error(exc) from exc


def _input_error(exc: ValidationError) -> InputError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    path = _json_path(first["loc"]) or "body"
    if first["type"] == "missing":
        message = "required field is missing"
    elif first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    else:
        message = first["msg"]
    more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return InputError(f"{path}: {message}{more}", field=path)


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


def _path_param(delivery: Delivery, name: str) -> str:
    value = delivery.path_params.get(name)
    if not value:
        raise InputError(f"{name}: required path parameter is missing", field=name, status=400)
    return value


def _qualified_repository(org: str, repository: str | None) -> str | None:
    if not repository:
        return None
    return repository if "/" in repository else f"{org}/{repository}"


def _registry_kind(registry_url: str) -> str:
    """The ``artifact-registry:`` value for a registry URL; an unrecognised registry is named by its host."""
    host = registry_url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1].lower()
    if host in _REGISTRY_HOSTS:
        return _REGISTRY_HOSTS[host]
    if "/artifactory" in registry_url or host.endswith(".jfrog.io"):
        return "jfrog-artifactory"
    if host.endswith(".pkg.github.com"):
        return "github-packages"
    return host or "unknown"


def _canonical_sha256(item: _Request) -> str:
    text = json.dumps(item.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _record_id(natural_key: tuple[str, ...]) -> int:
    digest = hashlib.sha256("\x1f".join(natural_key).encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _ID_BITS)) or 1


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
