"""CloudEvents 1.0 connector for cloud runtime monitors (``POST /events/cloudevents``).

Modes: structured (``Content-Type: application/cloudevents+json``, one event object) and batch
(``application/cloudevents-batch+json``, a JSON array). With another or no content type, an object is read
as one event and an array as a batch. Binary mode (attributes in ``ce-*`` headers) is refused with a clear
error: its body is only the data, so it cannot be told apart from a malformed event.

Each event needs ``specversion`` (``"1.0"`` only), ``id``, ``source`` and ``type``. ``data`` is a JSON
object, or ``data_base64`` holding one. ``time`` is the event time; without it, the receipt time. The event
id is a hash of ``source`` + ``id``, so a re-sent duplicate has the same id. A batch is atomic: one bad
event rejects it whole, with the field path of the culprit (``[3].specversion``), and the sender retries it.

Supported types (our own normalised types; the ``data`` keys each reads):

``dev.linkedartifacts.deployment.v1``, ``dev.linkedartifacts.runtime.container.running.v1``
    A deployment event, status ``data.status`` (default ``deployed``). Digest: ``data.digest`` (or
    ``data.image_id_digest``), else ``subject`` when it is a digest, else the digest ``data.image_ref`` is
    pinned to. Slot: ``data.logical_environment`` (or ``data.environment``), ``data.physical_environment``,
    ``data.cluster``, ``data.deployment_name`` (else ``{namespace}-{workload}-{container}``, GitHub's
    recommended format). Also ``runtime_risks`` (GitHub's four values), ``risks_asserted_by`` (default: the
    CloudEvent ``source``), ``namespace``, ``workload`` (with ``workload_kind``), ``container``,
    ``image_ref``, ``name``, ``version``, ``tags`` (string to string), ``github_repository``.
``dev.linkedartifacts.decommission.v1``
    The same keys; status ``decommissioned``. The digest may be missing: then ``digest`` is None and the
    event is keyed by ``slot_key(...)``, and the stream processor resolves which digest held the slot.
``dev.linkedartifacts.runtime-risk.v1``
    A ``deployed`` deployment event asserting ``data.runtime_risks`` (required, may be empty to clear) for
    a slot and digest, asserted by ``data.risks_asserted_by`` or the CloudEvent ``source``.
``dev.linkedartifacts.image.index.v1``
    ``data.index_digest`` and ``data.manifests[{digest, platform}]`` (platform ``"linux/arm64"`` or an OCI
    ``{os, architecture, variant}`` object): two ``link`` events per manifest, one keyed by the index
    digest and a mirror keyed by the platform digest, so either partition learns the pair.

Any other type is refused (422, code ``unsupported_event``, field ``type``). An ``image_ref`` on a deployment
also yields a ``storage`` event with ``action="observed"``: the link between the runtime's image reference
and its repository.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connectors.base import Delivery, InputError, ParseResult, event_id, optional_str
from connectors.sources.kubernetes import (
    as_digest,
    derive_deployment_name,
    field_prefix,
    image_observation,
    parse_image_reference,
    source_time,
)
from linked_artifacts.digests import is_digest
from linked_artifacts.events import (
    RUNTIME_RISKS,
    ArtifactEvent,
    DeploymentBody,
    DeploymentStatus,
    LinkBody,
    RuntimeRisk,
    Source,
    slot_key,
)

__all__ = ["BATCH_CONTENT_TYPE", "STRUCTURED_CONTENT_TYPE", "parse_cloudevents"]

SOURCE: Source = "cloudevents"

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

DEPLOYMENT_TYPE = "dev.linkedartifacts.deployment.v1"
CONTAINER_RUNNING_TYPE = "dev.linkedartifacts.runtime.container.running.v1"
DECOMMISSION_TYPE = "dev.linkedartifacts.decommission.v1"
RUNTIME_RISK_TYPE = "dev.linkedartifacts.runtime-risk.v1"
IMAGE_INDEX_TYPE = "dev.linkedartifacts.image.index.v1"

_DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = ("deployed", "decommissioned")


@dataclass(frozen=True)
class _Envelope:
    """The CloudEvent attributes every type uses."""

    source: str
    id: str
    subject: str | None
    time: datetime
    data: dict[str, Any]
    delivery: Delivery

    def event_id(self, *extra: str) -> str:
        # source + id is the CloudEvents identity: a re-sent duplicate has the same one.
        return event_id(SOURCE, self.source, self.id, *extra)

    def event(self, *, eid: str, key: str, digest: str | None, **body: Any) -> ArtifactEvent:
        return ArtifactEvent(
            event_id=eid,
            key=key,
            source=SOURCE,
            digest=digest,
            event_time=self.time,
            ingest_time=self.delivery.received_at,
            delivery_id=self.delivery.body_sha256,
            **body,
        )


def parse_cloudevents(delivery: Delivery, payload: Any) -> ParseResult:
    """Structured or batch CloudEvents to canonical events; see the module docstring."""
    if delivery.header("ce-specversion") is not None:
        raise InputError(
            "ce-specversion: binary-mode CloudEvents are not supported; send structured mode "
            f"(Content-Type: {STRUCTURED_CONTENT_TYPE}) or batch mode ({BATCH_CONTENT_TYPE})",
            field="ce-specversion",
            code="unsupported_mode",
        )
    media_type = (delivery.header("content-type") or "").split(";", 1)[0].strip().lower()
    if media_type == BATCH_CONTENT_TYPE and not isinstance(payload, list):
        raise InputError(f"$: {BATCH_CONTENT_TYPE} needs a JSON array of events", field="$", status=400)
    if media_type == STRUCTURED_CONTENT_TYPE and not isinstance(payload, dict):
        raise InputError(f"$: {STRUCTURED_CONTENT_TYPE} needs one event object", field="$", status=400)
    if isinstance(payload, list):
        if not payload:
            return ParseResult(ignored=True, note="empty CloudEvents batch")
        events: list[ArtifactEvent] = []
        for index, item in enumerate(payload):
            with field_prefix(f"[{index}]"):
                events.extend(_parse_event(delivery, item))
        return ParseResult(events=tuple(events))
    if isinstance(payload, dict):
        return ParseResult(events=tuple(_parse_event(delivery, payload)))
    raise InputError("$: expected a CloudEvent object or a batch array", field="$", status=400)


def _parse_event(delivery: Delivery, ce: Any) -> list[ArtifactEvent]:
    if not isinstance(ce, dict):
        raise InputError("expected a CloudEvent object", status=400)
    version = ce.get("specversion")
    if version is None:
        raise InputError("specversion: required attribute is missing", field="specversion")
    if version != "1.0":
        raise InputError(
            f"specversion: unsupported CloudEvents version {str(version)[:20]!r}; only 1.0 is accepted",
            field="specversion",
            code="unsupported_version",
        )
    attributes = {name: _attribute(ce, name) for name in ("id", "source", "type")}
    handler = _HANDLERS.get(attributes["type"])
    if handler is None:
        raise InputError(
            f"type: unsupported event type {attributes['type'][:100]!r}; "
            f"accepted: {', '.join(sorted(_HANDLERS))}",
            field="type",
            code="unsupported_event",
        )
    time = ce.get("time")
    envelope = _Envelope(
        source=attributes["source"],
        id=attributes["id"],
        subject=optional_str(ce, "subject"),
        time=source_time(time, field="time") if time is not None else delivery.received_at,
        data=_data(ce),
        delivery=delivery,
    )
    return handler(envelope)


def _attribute(ce: dict[str, Any], name: str) -> str:
    value = ce.get(name)
    if value is None:
        raise InputError(f"{name}: required attribute is missing", field=name)
    if not isinstance(value, str) or not value:
        raise InputError(f"{name}: expected a non-empty string", field=name)
    return value


def _data(ce: dict[str, Any]) -> dict[str, Any]:
    if "data" in ce and "data_base64" in ce:
        raise InputError("data_base64: an event carries data or data_base64, not both", field="data_base64")
    if "data_base64" in ce:
        encoded = ce["data_base64"]
        if not isinstance(encoded, str):
            raise InputError("data_base64: expected a base64 string", field="data_base64")
        try:
            data = json.loads(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError, RecursionError) as exc:
            # ValueError covers bad JSON and bad UTF-8; RecursionError a nesting the HTTP layer never saw.
            raise InputError("data_base64: expected base64 of a JSON object", field="data_base64") from exc
        if not isinstance(data, dict):
            raise InputError("data_base64: expected base64 of a JSON object", field="data_base64")
        return data
    data = ce.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("data: expected a JSON object", field="data")
    return data


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"data.{name}: expected a string", field=f"data.{name}")
    return value


@dataclass(frozen=True)
class _Slot:
    logical_environment: str
    physical_environment: str
    cluster: str
    deployment_name: str
    namespace: str | None
    workload: str | None
    container: str | None

    @property
    def key(self) -> str:
        return slot_key(
            self.logical_environment, self.physical_environment, self.cluster, self.deployment_name
        )


def _slot(data: dict[str, Any]) -> _Slot:
    logical = _text(data, "logical_environment") or _text(data, "environment")
    if logical is None:
        raise InputError(
            "data.logical_environment: required field is missing (or give data.environment)",
            field="data.logical_environment",
        )
    namespace, container = _text(data, "namespace"), _text(data, "container")
    workload_name = _text(data, "workload")
    workload_kind = _text(data, "workload_kind")
    # "Deployment/payments-api" or "payments-api": the slot name uses the bare workload name.
    bare_workload = workload_name.rsplit("/", 1)[-1] if workload_name else None
    deployment_name = _text(data, "deployment_name")
    if deployment_name is None:
        if not (namespace and bare_workload and container):
            raise InputError(
                "data.deployment_name: required field is missing (or give data.namespace, data.workload and "
                "data.container to derive {namespace}-{workload}-{container})",
                field="data.deployment_name",
            )
        deployment_name = derive_deployment_name(namespace, bare_workload, container)
    workload = workload_name
    if workload_name and workload_kind and "/" not in workload_name:
        workload = f"{workload_kind}/{workload_name}"
    return _Slot(
        logical_environment=logical,
        physical_environment=_text(data, "physical_environment") or "",
        cluster=_text(data, "cluster") or "",
        deployment_name=deployment_name,
        namespace=namespace,
        workload=workload,
        container=container,
    )


def _digest(envelope: _Envelope, *, required: bool) -> str | None:
    data = envelope.data
    for name in ("digest", "image_id_digest"):
        if data.get(name) is not None:
            return as_digest(data[name], field=f"data.{name}")
    if envelope.subject and is_digest(envelope.subject):
        return as_digest(envelope.subject, field="subject")
    image_ref = _text(data, "image_ref")
    parsed = parse_image_reference(image_ref) if image_ref else None
    if parsed is not None and parsed.digest is not None:
        return parsed.digest
    if required:
        raise InputError(
            "data.digest: required field is missing (or set subject to the digest, sha256:<64 hex>)",
            field="data.digest",
        )
    return None


def _risks(data: dict[str, Any], *, required: bool) -> list[RuntimeRisk]:
    value = data.get("runtime_risks")
    if value is None:
        if required:
            raise InputError("data.runtime_risks: required field is missing", field="data.runtime_risks")
        return []
    if not isinstance(value, list):
        raise InputError("data.runtime_risks: expected an array of strings", field="data.runtime_risks")
    declared: set[str] = set()
    for index, item in enumerate(value):
        risk = item.strip().lower() if isinstance(item, str) else None
        if risk not in RUNTIME_RISKS:
            # Our own normalised type has a documented vocabulary; a typo is the sender's to fix.
            path = f"data.runtime_risks[{index}]"
            raise InputError(
                f"{path}: unknown runtime risk; expected one of {', '.join(RUNTIME_RISKS)}", field=path
            )
        declared.add(risk)
    return [r for r in RUNTIME_RISKS if r in declared]


def _tags(data: dict[str, Any]) -> dict[str, str]:
    value = data.get("tags")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InputError("data.tags: expected an object of string values", field="data.tags")
    return {str(k): v for k, v in value.items()}


def _status(data: dict[str, Any], default: DeploymentStatus) -> DeploymentStatus:
    value = data.get("status")
    if value is None:
        return default
    for status in _DEPLOYMENT_STATUSES:
        if value == status:
            return status
    raise InputError("data.status: expected deployed or decommissioned", field="data.status")


def _deployment(
    envelope: _Envelope, *, status: DeploymentStatus, risks_required: bool
) -> list[ArtifactEvent]:
    data = envelope.data
    slot = _slot(data)
    digest = _digest(envelope, required=status == "deployed")
    image_ref = _text(data, "image_ref")
    parsed = parse_image_reference(image_ref) if image_ref else None
    decommissioned = status == "decommissioned"
    eid = envelope.event_id()
    body = DeploymentBody(
        logical_environment=slot.logical_environment,
        physical_environment=slot.physical_environment,
        cluster=slot.cluster,
        deployment_name=slot.deployment_name,
        status=status,
        runtime_risks=[] if decommissioned else _risks(data, required=risks_required),
        risks_asserted_by=None if decommissioned else (_text(data, "risks_asserted_by") or envelope.source),
        name=_text(data, "name") or (parsed.repository if parsed else None),
        version=_text(data, "version") or (parsed.tag if parsed else None),
        namespace=slot.namespace,
        workload=slot.workload,
        container=slot.container,
        image_ref=image_ref,
        tags=_tags(data),
        github_repository=_text(data, "github_repository"),
    )
    events = [
        envelope.event(eid=eid, key=digest or slot.key, digest=digest, kind="deployment", deployment=body)
    ]
    if digest is not None and not decommissioned:
        observed = image_observation(
            source=SOURCE,
            image_ref=image_ref,
            digest=digest,
            parent_event_id=eid,
            event_time=envelope.time,
            ingest_time=envelope.delivery.received_at,
            delivery_id=envelope.delivery.body_sha256,
        )
        if observed is not None:
            events.append(observed)
    return events


def _on_deployment(envelope: _Envelope) -> list[ArtifactEvent]:
    return _deployment(envelope, status=_status(envelope.data, "deployed"), risks_required=False)


def _on_decommission(envelope: _Envelope) -> list[ArtifactEvent]:
    return _deployment(envelope, status="decommissioned", risks_required=False)


def _on_runtime_risk(envelope: _Envelope) -> list[ArtifactEvent]:
    return _deployment(envelope, status="deployed", risks_required=True)


def _platform(value: Any, manifest_path: str) -> str | None:
    path = f"{manifest_path}.platform"
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        parts = [value.get("os"), value.get("architecture"), value.get("variant")]
        if all(isinstance(p, str) and p for p in parts[:2]):
            return "/".join(p for p in parts if isinstance(p, str) and p)
    raise InputError(f"{path}: expected os/architecture text or {{os, architecture, variant}}", field=path)


def _on_image_index(envelope: _Envelope) -> list[ArtifactEvent]:
    data = envelope.data
    if data.get("index_digest") is None:
        raise InputError("data.index_digest: required field is missing", field="data.index_digest")
    index = as_digest(data["index_digest"], field="data.index_digest")
    manifests = data.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise InputError("data.manifests: expected a non-empty array", field="data.manifests")
    events: list[ArtifactEvent] = []
    for position, manifest in enumerate(manifests):
        path = f"data.manifests[{position}]"
        if not isinstance(manifest, dict):
            raise InputError(f"{path}: expected an object", field=path)
        platform_digest = as_digest(manifest.get("digest"), field=f"{path}.digest")
        if platform_digest == index:
            continue  # an index cannot be its own platform manifest; nothing to link
        link = LinkBody(
            index_digest=index,
            platform_digest=platform_digest,
            platform=_platform(manifest.get("platform"), path),
        )
        # One copy per digest's partition: whichever digest a later event names, its worker sees the pair.
        for key, side in ((index, "index"), (platform_digest, "platform")):
            eid = envelope.event_id("link", platform_digest, side)
            events.append(envelope.event(eid=eid, key=key, digest=key, kind="link", link=link))
    return events


_HANDLERS: dict[str, Callable[[_Envelope], list[ArtifactEvent]]] = {
    DEPLOYMENT_TYPE: _on_deployment,
    CONTAINER_RUNNING_TYPE: _on_deployment,
    DECOMMISSION_TYPE: _on_decommission,
    RUNTIME_RISK_TYPE: _on_runtime_risk,
    IMAGE_INDEX_TYPE: _on_image_index,
}
