"""Kubernetes runtime connector: Pod status becomes deployment events.

Accepted bodies (``POST /events/kubernetes``):

- a Pod object, or a ``PodList`` / ``List`` of them (``kubectl get pods -o json``);
- a watch event ``{"type": "ADDED|MODIFIED|DELETED", "object": {...}}``, or a JSON array of them;
- a watch ``DELETED`` event of a workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
  ReplicationController).

What each becomes:

- A ``Running`` Pod: one ``deployed`` event per container and init container whose ``imageID`` is resolved.
  The digest is the sha256 part of ``imageID`` (``docker-pullable://repo@sha256:…``, ``docker://sha256:…``,
  ``ghcr.io/acme/app@sha256:…``). For a multi-arch image that is the index digest (CRI reports the repo
  digest); the stream processor's index↔platform links take it from there. A container without an
  ``imageID`` yet (image still pulling) is skipped with a note: it runs nothing yet, so it is not an error.
- A deleted Pod owned by a controller is ignored: the workload still exists and replaces the pod, so the
  slot keeps running (GitHub's deployment-tracker behaves the same). A deleted bare Pod decommissions its
  containers' slots.
- A deleted workload decommissions the slot of each container of its pod template. The digest is set only
  when the template pins the image by digest; otherwise the event has ``digest=None`` and is keyed by
  ``slot_key(...)``, and the stream processor resolves which digest held the slot.

Slots follow GitHub's deployment records: ``deployment_name = {namespace}-{workload}-{container}``, in the
cluster and logical environment the sender's token settings (``kubernetes_cluster``,
``kubernetes_environment``) or the query parameters ``?cluster=``, ``?environment=`` and ``?region=`` name.

Annotations, as GitHub's deployment-tracker reads them: ``metadata.github.com/runtime-risks`` (a comma list
of runtime risks; unknown values are dropped with a note) and any other ``metadata.github.com/<key>``
(tags: at most 5, keys sorted, key and value at most 100 characters; longer ones are dropped with a note).

Event ids hash (cluster, namespace, pod uid, container, digest, status, event time), so a redelivered watch
event gets the same ids; a deployed event also hashes its risks and tags, so re-annotating a pod is a new
fact. A deletion without ``deletionTimestamp`` takes the receipt time as its event time and the object's
``resourceVersion`` in its id instead. Events are sent with ``delivery_id`` = sha256 of the body.

This module also holds the image-reference helpers the CloudEvents connector shares: each observed image
reference is recorded as a ``storage`` event with ``action="observed"``, linking the digest to the
repository it was pulled from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from connectors.base import Delivery, InputError, ParseResult, event_id, parse_time
from linked_artifacts.digests import InvalidDigest, image_repository, normalise_digest
from linked_artifacts.events import (
    RUNTIME_RISKS,
    ArtifactEvent,
    DeploymentBody,
    DeploymentStatus,
    RuntimeRisk,
    Source,
    StorageBody,
    slot_key,
)

__all__ = [
    "ImageReference",
    "as_digest",
    "derive_deployment_name",
    "field_prefix",
    "image_observation",
    "join_path",
    "parse_image_reference",
    "parse_kubernetes",
    "source_time",
]

SOURCE: Source = "kubernetes"

_GITHUB_ANNOTATION_PREFIX = "metadata.github.com/"
_RISKS_ANNOTATION = _GITHUB_ANNOTATION_PREFIX + "runtime-risks"
# GitHub's deployment-tracker keeps at most 5 tags, keys sorted, key and value at most 100 characters.
# The same limits keep a record meaning the same here and on GitHub.
_MAX_TAGS = 5
_MAX_TAG_CHARS = 100

# Owners that replace a deleted pod: while they exist, a pod deletion is churn, not a decommission.
_CONTROLLER_KINDS = frozenset({"ReplicaSet", "StatefulSet", "DaemonSet", "Job", "ReplicationController"})
# Workloads whose deletion ends their containers' slots.
_WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController"}
)
_WATCH_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
# Bookmarks and watch errors are about the watch itself, not about what runs.
_IGNORED_WATCH_TYPES = frozenset({"BOOKMARK", "ERROR"})
# Kubernetes writes a pod-template-hash as the decimal digits of a 32-bit hash, each mapped into this
# alphabet (no vowels, no 0/1/3), so it is 5 to 10 characters long in practice. A last name segment of that
# shape is taken as the hash a Deployment appended to its ReplicaSet's name; "db" or "v2" is not.
_POD_TEMPLATE_HASH_ALPHABET = frozenset("bcdfghjklmnpqrstvwxz2456789")
_POD_TEMPLATE_HASH_LENGTHS = range(5, 11)
# Docker Hub answers under several host names; one name keeps its storage locations joinable.
_DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)


# --- helpers shared with the CloudEvents connector ---------------------------------------------------------


class ImageReference(NamedTuple):
    """An image reference split into the parts a storage location needs."""

    host: str  # registry host, lower case; docker.io for Docker Hub short names
    repository: str  # path within the registry, e.g. acme/payments-api
    tag: str | None
    digest: str | None  # the pinned digest, normalised, when the reference has one


def parse_image_reference(ref: str) -> ImageReference | None:
    """``ghcr.io/acme/app:1.2@sha256:…`` -> (ghcr.io, acme/app, 1.2, sha256:…); None when there is no
    repository to name (``sha256:…`` or ``docker://sha256:…``)."""
    repo = image_repository(ref.strip())
    if repo is None:
        return None
    text = ref.strip()
    text = text.split("://", 1)[1] if "://" in text else text
    name, _, pinned = text.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    digest: str | None = None
    if pinned:
        try:
            digest = normalise_digest(pinned)
        except InvalidDigest:
            digest = None
    first, slash, rest = repo.partition("/")
    # Docker's rule: the first segment is a registry host only if it looks like one.
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first.lower(), rest
    else:
        host, path = _DOCKER_HUB, repo if slash else "library/" + repo
    if host in _DOCKER_HUB_ALIASES:
        host = _DOCKER_HUB
    if not path:
        return None
    return ImageReference(host=host, repository=path, tag=tag or None, digest=digest)


def image_observation(
    *,
    source: Source,
    image_ref: str | None,
    digest: str,
    parent_event_id: str,
    event_time: datetime,
    ingest_time: datetime,
    delivery_id: str,
) -> ArtifactEvent | None:
    """A storage event recording that ``digest`` was pulled from ``image_ref``'s repository (and, when the
    reference has a tag, that the tag pointed at it then). None when the reference names no repository."""
    if not image_ref:
        return None
    parsed = parse_image_reference(image_ref)
    if parsed is None:
        return None
    return ArtifactEvent(
        event_id=event_id(parent_event_id, "storage-observed"),
        key=digest,
        kind="storage",
        source=source,
        digest=digest,
        event_time=event_time,
        ingest_time=ingest_time,
        delivery_id=delivery_id,
        storage=StorageBody(
            registry=parsed.host,
            registry_url=f"https://{parsed.host}/",
            repository=parsed.repository,
            name=parsed.repository,
            tags=[parsed.tag] if parsed.tag else [],
            action="observed",
        ),
    )


def derive_deployment_name(namespace: str, workload: str, container: str) -> str:
    """GitHub's recommended deployment_name format: ``{namespace}-{workload}-{container}``."""
    return f"{namespace}-{workload}-{container}"


def as_digest(value: Any, *, field: str) -> str:
    """A normalised digest, or InputError (422) naming ``field``."""
    if not isinstance(value, str) or not value:
        raise InputError(f"{field}: expected a sha256 digest string", field=field)
    try:
        return normalise_digest(value, field=field)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=field, code=exc.code) from exc


def source_time(value: Any, *, field: str) -> datetime:
    """An RFC 3339 time string as aware UTC. ``base.parse_time`` lets out-of-range times escape as
    OverflowError/OSError (a 500); here they are the sender's 422 like any other bad time."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected an RFC 3339 time string", field=field)
    try:
        return parse_time(value, field=field)
    except (OverflowError, OSError, ValueError) as exc:
        raise InputError(f"{field}: {value[:60]!r} is out of range", field=field) from exc


def join_path(prefix: str, rest: str) -> str:
    """JSON path of ``rest`` inside ``prefix``: ``join_path("[3]", "data.digest") == "[3].data.digest"``."""
    if not prefix:
        return rest
    if not rest:
        return prefix
    return f"{prefix}{rest}" if rest.startswith("[") else f"{prefix}.{rest}"


@contextmanager
def field_prefix(prefix: str) -> Iterator[None]:
    """Re-raise InputError with its field (and message) under ``prefix``, so a helper that names fields
    relative to one object still reports the full JSON path, e.g. ``[3].specversion`` in a batch."""
    try:
        yield
    except InputError as exc:
        if not prefix:
            raise
        inner = exc.field or ""
        full = join_path(prefix, inner)
        message = exc.message
        message = (
            full + message[len(inner) :] if inner and message.startswith(inner) else f"{full}: {message}"
        )
        raise InputError(message, field=full, status=exc.status or 422, code=exc.code) from exc


# --- the Kubernetes parser ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where the events of this delivery belong: the slot coordinates the request itself cannot carry."""

    cluster: str
    environment: str
    region: str


@dataclass
class _Output:
    events: list[ArtifactEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Workload:
    kind: str
    name: str
    controlled: bool  # a controller owns the pod and will replace it

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_kubernetes(delivery: Delivery, payload: Any) -> ParseResult:
    """Pods, pod lists and watch events to deployment events; see the module docstring."""
    target = _target(delivery)
    out = _Output()
    for path, watch_type, obj in _objects(payload):
        _parse_object(delivery, target, out, path=path, watch_type=watch_type, obj=obj)
    return ParseResult(events=tuple(out.events), ignored=not out.events, note="; ".join(out.notes) or None)


def _target(delivery: Delivery) -> _Target:
    # A query parameter names this request; the token's settings name the sender's default.
    cluster = delivery.query.get("cluster") or delivery.sender.get("cluster") or ""
    if not cluster:
        raise InputError(
            "cluster: no cluster given for these pods; add the query parameter ?cluster=<name> or set "
            "kubernetes_cluster for this token",
            field="cluster",
        )
    environment = delivery.query.get("environment") or delivery.sender.get("environment") or ""
    if not environment:
        raise InputError(
            "environment: no logical environment given for these pods; add the query parameter "
            "?environment=<name> (e.g. prod) or set kubernetes_environment for this token",
            field="environment",
        )
    region = delivery.query.get("region") or delivery.sender.get("region") or ""
    return _Target(cluster=cluster, environment=environment, region=region)


def _objects(payload: Any) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(JSON path, watch type or None, object) for each object the body carries."""
    if isinstance(payload, list):
        for index, item in enumerate(payload):
            yield _unwrap(item, f"[{index}]")
        return
    if not isinstance(payload, dict):
        raise InputError(
            "$: expected a Pod, a PodList or watch events (a JSON object or array)", field="$", status=400
        )
    if payload.get("kind") in ("PodList", "List"):
        items = payload.get("items")
        if not isinstance(items, list):
            raise InputError("items: expected an array of Pods", field="items", status=400)
        for index, item in enumerate(items):
            path = f"items[{index}]"
            if not isinstance(item, dict):
                raise InputError(f"{path}: expected a Pod object", field=path, status=400)
            yield path, None, item
        return
    yield _unwrap(payload, "")


def _unwrap(item: Any, path: str) -> tuple[str, str | None, dict[str, Any]]:
    if not isinstance(item, dict):
        raise InputError(f"{path or '$'}: expected an object", field=path or "$", status=400)
    if "object" not in item or "type" not in item:
        return path, None, item
    obj_path = join_path(path, "object")
    type_path = join_path(path, "type")
    watch_type = item["type"]
    if not isinstance(watch_type, str) or watch_type not in _WATCH_TYPES | _IGNORED_WATCH_TYPES:
        shown = watch_type[:40] if isinstance(watch_type, str) else watch_type
        raise InputError(
            f"{type_path}: unsupported watch event type {shown!r} (expected ADDED, MODIFIED or DELETED)",
            field=type_path,
            code="unsupported_event",
        )
    obj = item["object"]
    if not isinstance(obj, dict):
        raise InputError(f"{obj_path}: expected an object", field=obj_path, status=400)
    return obj_path, watch_type, obj


def _parse_object(
    delivery: Delivery,
    target: _Target,
    out: _Output,
    *,
    path: str,
    watch_type: str | None,
    obj: dict[str, Any],
) -> None:
    if watch_type in _IGNORED_WATCH_TYPES:
        out.notes.append(f"{watch_type} watch event ignored")
        return
    kind = obj.get("kind")
    spec = obj.get("spec")
    if kind == "Pod" or (kind is None and isinstance(spec, dict) and "containers" in spec):
        with field_prefix(path):
            _parse_pod(delivery, target, out, pod=obj, deleted=watch_type == "DELETED")
        return
    if isinstance(kind, str) and kind in _WORKLOAD_KINDS:
        if watch_type != "DELETED":
            # What runs is learnt from pods; a workload only matters when it is gone.
            out.notes.append(f"{kind} event ignored: only a DELETED {kind} ends its slots")
            return
        with field_prefix(path):
            _parse_deleted_workload(delivery, target, out, kind=kind, workload=obj)
        return
    kind_path = join_path(path, "kind")
    shown = kind[:40] if isinstance(kind, str) else kind
    raise InputError(
        f"{kind_path}: unsupported kind {shown!r}; expected Pod, PodList, or a DELETED "
        "Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or ReplicationController",
        field=kind_path,
        code="unsupported_event",
    )


def _metadata(obj: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise InputError("metadata: required object is missing", field="metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InputError("metadata.name: required field is missing", field="metadata.name")
    namespace = meta.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise InputError("metadata.namespace: required field is missing", field="metadata.namespace")
    return meta, namespace, name


def _str_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected an object of strings", field=path)
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _workload_of_replicaset(name: str, labels: Mapping[str, str]) -> tuple[str, str]:
    """(kind, name) of the workload behind a ReplicaSet named ``name``.

    A Deployment names its ReplicaSets ``<deployment>-<pod-template-hash>``. The ReplicaSet's own owner is not
    in a Pod, so the hash is stripped: exactly the ``pod-template-hash`` label when given, else the last
    dash-separated segment when it looks like such a hash. Pods and a deleted ReplicaSet use this same rule,
    so both name the same slot."""
    template_hash = labels.get("pod-template-hash")
    if template_hash and name.endswith("-" + template_hash):
        return "Deployment", name[: -len(template_hash) - 1]
    head, dash, tail = name.rpartition("-")
    if dash and head and len(tail) in _POD_TEMPLATE_HASH_LENGTHS and set(tail) <= _POD_TEMPLATE_HASH_ALPHABET:
        return "Deployment", head
    return "ReplicaSet", name


def _pod_workload(meta: dict[str, Any], pod_name: str) -> _Workload:
    owners = meta.get("ownerReferences")
    owner: dict[str, Any] | None = None
    if isinstance(owners, list):
        refs = [o for o in owners if isinstance(o, dict)]
        owner = next((o for o in refs if o.get("controller") is True), refs[0] if refs else None)
    if owner is None:
        return _Workload(kind="Pod", name=pod_name, controlled=False)
    kind, name = owner.get("kind"), owner.get("name")
    if not isinstance(kind, str) or not isinstance(name, str) or not kind or not name:
        raise InputError(
            "metadata.ownerReferences: an owner reference needs kind and name",
            field="metadata.ownerReferences",
        )
    controlled = kind in _CONTROLLER_KINDS or owner.get("controller") is True
    if kind == "ReplicaSet":
        kind, name = _workload_of_replicaset(name, _str_map(meta.get("labels"), "metadata.labels"))
    return _Workload(kind=kind, name=name, controlled=controlled)


def _annotations(
    meta: dict[str, Any], notes: list[str], who: str
) -> tuple[list[RuntimeRisk], dict[str, str]]:
    annotations = _str_map(meta.get("annotations"), "metadata.annotations")
    declared = {r.strip().lower() for r in annotations.get(_RISKS_ANNOTATION, "").split(",") if r.strip()}
    unknown = sorted(declared.difference(RUNTIME_RISKS))
    if unknown:
        notes.append(f"{who}: unknown runtime risks dropped: {', '.join(u[:40] for u in unknown)}")
    risks: list[RuntimeRisk] = [r for r in RUNTIME_RISKS if r in declared]
    tags: dict[str, str] = {}
    too_long: list[str] = []
    for key in sorted(annotations):
        if not key.startswith(_GITHUB_ANNOTATION_PREFIX) or key == _RISKS_ANNOTATION:
            continue
        tag = key[len(_GITHUB_ANNOTATION_PREFIX) :]
        value = annotations[key]
        if not tag:
            continue
        if len(tag) > _MAX_TAG_CHARS or len(value) > _MAX_TAG_CHARS:
            too_long.append(tag[:40])
            continue
        if len(tags) < _MAX_TAGS:
            tags[tag] = value
    if too_long:
        notes.append(f"{who}: tags longer than {_MAX_TAG_CHARS} characters dropped: {', '.join(too_long)}")
    return risks, tags


def _container_statuses(status: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for list_name in ("initContainerStatuses", "containerStatuses"):
        items = status.get(list_name)
        if items is None:
            continue
        if not isinstance(items, list):
            raise InputError(f"status.{list_name}: expected an array", field=f"status.{list_name}")
        for index, item in enumerate(items):
            path = f"status.{list_name}[{index}]"
            if not isinstance(item, dict):
                raise InputError(f"{path}: expected an object", field=path)
            yield path, item


def _spec_containers(spec: Any, spec_path: str) -> Iterator[tuple[str, str, str | None]]:
    """(path, name, image) of each init and regular container of a pod spec."""
    if not isinstance(spec, dict):
        raise InputError(f"{spec_path}: required object is missing", field=spec_path)
    for list_name in ("initContainers", "containers"):
        items = spec.get(list_name) or []
        if not isinstance(items, list):
            raise InputError(f"{spec_path}.{list_name}: expected an array", field=f"{spec_path}.{list_name}")
        for index, item in enumerate(items):
            path = f"{spec_path}.{list_name}[{index}]"
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise InputError(f"{path}.name: required field is missing", field=f"{path}.name")
            image = item.get("image")
            yield path, name, image if isinstance(image, str) and image else None


def _started_at(
    cs: dict[str, Any], status: dict[str, Any], meta: dict[str, Any], path: str
) -> datetime | None:
    """When this container began running this digest, from the most specific time the pod carries."""
    candidates = (
        (cs, "state.running.startedAt", f"{path}.state.running.startedAt"),
        (cs, "state.terminated.startedAt", f"{path}.state.terminated.startedAt"),
        (status, "startTime", "status.startTime"),
        (meta, "creationTimestamp", "metadata.creationTimestamp"),
    )
    for obj, dotted, full in candidates:
        value: Any = obj
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value:
            return source_time(value, field=full)
    return None


def _parse_pod(
    delivery: Delivery, target: _Target, out: _Output, *, pod: dict[str, Any], deleted: bool
) -> None:
    meta, namespace, pod_name = _metadata(pod)
    workload = _pod_workload(meta, pod_name)
    who = f"pod {namespace}/{pod_name}"
    if deleted:
        if workload.controlled:
            out.notes.append(f"{who} deleted: ignored, its workload {workload.label} still exists")
            return
        _decommission_bare_pod(delivery, target, out, pod=pod, meta=meta, namespace=namespace, name=pod_name)
        return
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    if not isinstance(status, dict) or phase != "Running":
        out.notes.append(f"{who} is {phase or 'without status'}: nothing is running yet or any more")
        return
    risks, tags = _annotations(meta, out.notes, who)
    spec_images = {name: image for _, name, image in _spec_containers(pod.get("spec") or {}, "spec")}
    pod_uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
    for path, cs in _container_statuses(status):
        container = cs.get("name")
        if not isinstance(container, str) or not container:
            raise InputError(f"{path}.name: required field is missing", field=f"{path}.name")
        image_id = cs.get("imageID")
        if not isinstance(image_id, str) or not image_id:
            out.notes.append(f"{who} container {container}: no imageID yet (pending), skipped")
            continue
        try:
            digest = normalise_digest(image_id, field=f"{path}.imageID")
        except InvalidDigest as exc:
            # One container with an exotic runtime digest must not hide the rest of the cluster.
            out.notes.append(f"{who} container {container}: skipped, {exc.message}")
            continue
        image_ref = _image_ref(cs.get("image"), spec_images.get(container))
        event_time = _started_at(cs, status, meta, path) or delivery.received_at
        deployment_name = derive_deployment_name(namespace, workload.name, container)
        # Risks and tags are in the id: a pod re-annotated with new risks is a new fact, while a
        # redelivered watch event (same content) still gets the same id.
        eid = event_id(
            SOURCE,
            target.cluster,
            namespace,
            pod_uid or pod_name,
            container,
            digest,
            "deployed",
            event_time.isoformat(),
            ",".join(risks),
            json.dumps(tags, sort_keys=True),
        )
        parsed = parse_image_reference(image_ref) if image_ref else None
        out.events.append(
            _deployment_event(
                delivery,
                eid=eid,
                key=digest,
                digest=digest,
                event_time=event_time,
                body=DeploymentBody(
                    logical_environment=target.environment,
                    physical_environment=target.region,
                    cluster=target.cluster,
                    deployment_name=deployment_name,
                    status="deployed",
                    runtime_risks=risks,
                    risks_asserted_by=f"{SOURCE}:{target.cluster}",
                    name=parsed.repository if parsed else None,
                    version=parsed.tag if parsed else None,
                    namespace=namespace,
                    workload=workload.label,
                    container=container,
                    image_ref=image_ref,
                    tags=tags,
                ),
            )
        )
        # The runtime's own imageID names the repository when the image reference does not (sha256:…).
        observed = image_observation(
            source=SOURCE,
            image_ref=image_ref if parsed else image_id,
            digest=digest,
            parent_event_id=eid,
            event_time=event_time,
            ingest_time=delivery.received_at,
            delivery_id=delivery.body_sha256,
        )
        if observed is not None:
            out.events.append(observed)


def _image_ref(status_image: Any, spec_image: str | None) -> str | None:
    """The image reference as the runtime saw it (status), unless the runtime reports only an image id
    there (Docker shows ``sha256:…`` for some images); then the reference the spec asked for."""
    if isinstance(status_image, str) and status_image and parse_image_reference(status_image):
        return status_image
    return spec_image or (status_image if isinstance(status_image, str) and status_image else None)


def _deletion(delivery: Delivery, meta: dict[str, Any]) -> tuple[datetime, str]:
    """Event time of a deletion and the token that makes its id stable across redeliveries.

    ``deletionTimestamp`` is absent when an object without finalizers goes at once; then the time is the
    receipt time, and the id uses the object's resourceVersion (the same in a redelivered watch event)."""
    stamp = meta.get("deletionTimestamp")
    if stamp:
        when = source_time(stamp, field="metadata.deletionTimestamp")
        return when, when.isoformat()
    version = meta.get("resourceVersion")
    token = f"rv:{version}" if isinstance(version, str) and version else f"body:{delivery.body_sha256}"
    return delivery.received_at, token


def _decommission_bare_pod(
    delivery: Delivery,
    target: _Target,
    out: _Output,
    *,
    pod: dict[str, Any],
    meta: dict[str, Any],
    namespace: str,
    name: str,
) -> None:
    raw_status = pod.get("status")
    status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
    ran: dict[str, str] = {}
    for path, cs in _container_statuses(status):
        container, image_id = cs.get("name"), cs.get("imageID")
        if isinstance(container, str) and isinstance(image_id, str) and image_id:
            try:
                ran[container] = normalise_digest(image_id, field=f"{path}.imageID")
            except InvalidDigest:
                continue
    when, token = _deletion(delivery, meta)
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
    workload = _Workload(kind="Pod", name=name, controlled=False)
    for _, container, image in _spec_containers(pod.get("spec"), "spec"):
        parsed = parse_image_reference(image) if image else None
        digest = ran.get(container) or (parsed.digest if parsed else None)
        _append_decommission(
            delivery,
            target,
            out,
            namespace=namespace,
            workload=workload,
            container=container,
            image=image,
            digest=digest,
            when=when,
            id_parts=(uid or name, token),
        )


def _parse_deleted_workload(
    delivery: Delivery, target: _Target, out: _Output, *, kind: str, workload: dict[str, Any]
) -> None:
    meta, namespace, name = _metadata(workload)
    if kind == "ReplicaSet":
        owners = meta.get("ownerReferences")
        if isinstance(owners, list) and any(
            isinstance(o, dict) and (o.get("controller") is True or o.get("kind") == "Deployment")
            for o in owners
        ):
            # Deployments delete old ReplicaSets on every rollout; the Deployment still runs the slot.
            out.notes.append(f"ReplicaSet {namespace}/{name} deleted: ignored, its Deployment still exists")
            return
        kind, name = _workload_of_replicaset(name, _str_map(meta.get("labels"), "metadata.labels"))
    spec = workload.get("spec")
    template = spec.get("template") if isinstance(spec, dict) else None
    pod_spec = template.get("spec") if isinstance(template, dict) else None
    when, token = _deletion(delivery, meta)
    uid = meta.get("uid") if isinstance(meta.get("uid"), str) else None
    owner = _Workload(kind=kind, name=name, controlled=True)
    for _, container, image in _spec_containers(pod_spec, "spec.template.spec"):
        parsed = parse_image_reference(image) if image else None
        _append_decommission(
            delivery,
            target,
            out,
            namespace=namespace,
            workload=owner,
            container=container,
            image=image,
            digest=parsed.digest if parsed else None,
            when=when,
            id_parts=(uid or f"{kind}/{name}", token),
        )


def _append_decommission(
    delivery: Delivery,
    target: _Target,
    out: _Output,
    *,
    namespace: str,
    workload: _Workload,
    container: str,
    image: str | None,
    digest: str | None,
    when: datetime,
    id_parts: tuple[str, str],
) -> None:
    deployment_name = derive_deployment_name(namespace, workload.name, container)
    status: DeploymentStatus = "decommissioned"
    key = digest or slot_key(target.environment, target.region, target.cluster, deployment_name)
    eid = event_id(SOURCE, target.cluster, namespace, id_parts[0], container, digest, status, id_parts[1])
    out.events.append(
        _deployment_event(
            delivery,
            eid=eid,
            key=key,
            digest=digest,
            event_time=when,
            body=DeploymentBody(
                logical_environment=target.environment,
                physical_environment=target.region,
                cluster=target.cluster,
                deployment_name=deployment_name,
                status=status,
                namespace=namespace,
                workload=workload.label,
                container=container,
                image_ref=image,
            ),
        )
    )


def _deployment_event(
    delivery: Delivery,
    *,
    eid: str,
    key: str,
    digest: str | None,
    event_time: datetime,
    body: DeploymentBody,
) -> ArtifactEvent:
    return ArtifactEvent(
        event_id=eid,
        key=key,
        kind="deployment",
        source=SOURCE,
        digest=digest,
        event_time=event_time,
        ingest_time=delivery.received_at,
        delivery_id=delivery.body_sha256,
        deployment=body,
    )
