"""JFrog Artifactory predefined webhooks: the ``artifact`` and ``docker`` domains become storage events.

A storage location is (registry_url, repository, path), where ``registry_url`` is ``jpd_origin`` followed by
``/artifactory/``. When ``jpd_origin`` is missing the location is recorded under ``registry_url="unknown"``
and the result says so in its note: refusing the event would lose it, and with one Artifactory instance per
secret the placeholder still keeps locations, moves and deletes consistent with one another.

How each event is represented:

- ``deployed`` / ``pushed``: the location is active.
- ``deleted``: the location is deleted.
- ``moved``: the target location is active and names the source in ``previous_repository``/``previous_path``,
  so the state retires the source instead of keeping two active copies.
- ``copied``: the target location is active; the source stays as it was.
- ``promoted`` (docker): the target repository is active, with ``previous_*`` set from the source fields
  when the payload has them. JFrog does not document those fields, so both the ``*_repo_key`` and the
  ``*_repo_path`` spellings are read.

``source_repo_path`` / ``target_repo_path`` are read as ``<repo>/<path>``; a value without a slash is a bare
repository key, and the artifact keeps its path. A ``list.manifest.json`` whose ``platforms[]`` entries carry
a digest also yields index-to-platform ``link`` events, keyed once by each digest so that both digests' states
learn the link. Tags are observations on the storage event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from connectors.base import Delivery, InputError, ParseResult, event_id, optional, optional_str, require_str
from connectors.jsonlimits import parse_json
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.events import ArtifactEvent, LinkBody, StorageAction, StorageBody, StorageStatus

__all__ = ["UNKNOWN_REGISTRY_URL", "parse_artifactory"]

_SOURCE: Literal["artifactory"] = "artifactory"
_REGISTRY = "jfrog-artifactory"
UNKNOWN_REGISTRY_URL = "unknown"
_HANDLED: dict[str, frozenset[str]] = {
    "artifact": frozenset({"deployed", "deleted", "moved", "copied"}),
    "docker": frozenset({"pushed", "deleted", "promoted"}),
}
# Domains JFrog sends that carry no storage fact for a digest: acknowledged so JFrog does not retry them.
_IGNORED_DOMAINS = frozenset(
    {
        "artifact_property",
        "artifact_lifecycle",
        "build",
        "release_bundle",
        "release_bundle_v2",
        "release_bundle_v2_promotion",
        "distribution",
        "destination",
        "user",
    }
)
_INDEX_FILE = "list.manifest.json"
_ACTIONS: dict[str, StorageAction] = {
    "deployed": "deployed",
    "deleted": "deleted",
    "moved": "moved",
    "copied": "copied",
    "pushed": "pushed",
    "promoted": "promoted",
}
# A data object has about a dozen fields and one entry per platform; these bounds leave ample room.
_DATA_MAX_DEPTH = 16
_DATA_MAX_ITEMS = 10_000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# A ULID whose time lies outside this window is not trusted as the event time (clock or format trouble).
_ULID_EARLIEST = datetime(2015, 1, 1, tzinfo=UTC)
_ULID_FUTURE_SLACK = timedelta(days=1)


class _Location(NamedTuple):
    repository: str
    path: str


def parse_artifactory(delivery: Delivery, payload: Any) -> ParseResult:
    """Parse one Artifactory webhook delivery; raises ``InputError`` naming the offending field."""
    envelope = _envelope(payload)
    domain = require_str(envelope, "domain")
    if domain in _IGNORED_DOMAINS:
        return ParseResult(ignored=True, note=f"domain {domain!r} carries no storage facts")
    if domain not in _HANDLED:
        raise InputError(
            f"domain: {domain[:60]!r} is not supported (expected artifact or docker)",
            field="domain",
            code="unsupported_event",
        )
    body = {**envelope, "data": _data(envelope)}
    event_type = optional_str(body, "event_type") or optional_str(body, "data.event_type")
    if event_type is None:
        raise InputError("event_type: required field is missing", field="event_type")
    if event_type not in _HANDLED[domain]:
        allowed = ", ".join(sorted(_HANDLED[domain]))
        raise InputError(
            f"event_type: {event_type[:60]!r} is not supported for domain {domain} (expected {allowed})",
            field="event_type",
            code="unsupported_event",
        )
    context = _Context.create(delivery, envelope)
    events = _storage_events(context, domain, event_type, body)
    note = None
    if context.registry_url == UNKNOWN_REGISTRY_URL:
        note = f"jpd_origin is missing: locations are recorded under registry_url {UNKNOWN_REGISTRY_URL!r}"
    return ParseResult(events=events, note=note)


class _Context:
    """What every event of one delivery shares."""

    def __init__(self, delivery: Delivery, delivery_id: str, registry_url: str, event_time: datetime) -> None:
        self.delivery = delivery
        self.delivery_id = delivery_id
        self.registry_url = registry_url
        self.event_time = event_time

    @classmethod
    def create(cls, delivery: Delivery, envelope: dict[str, Any]) -> _Context:
        source_id = optional_str(envelope, "id")
        # Without a source id, the raw body is the identity: a redelivery repeats it byte for byte.
        delivery_id = source_id or delivery.body_sha256
        event_time = delivery.received_at
        if source_id:
            event_time = _ulid_time(source_id, delivery.received_at) or event_time
        return cls(delivery, delivery_id, _registry_url(optional_str(envelope, "jpd_origin")), event_time)

    def event(
        self,
        *,
        discriminator: tuple[str | int | None, ...],
        digest: str,
        storage: StorageBody | None = None,
        link: LinkBody | None = None,
    ) -> ArtifactEvent:
        return ArtifactEvent(
            event_id=event_id(_SOURCE, self.delivery_id, *discriminator),
            key=digest,
            kind="storage" if storage is not None else "link",
            source=_SOURCE,
            digest=digest,
            event_time=self.event_time,
            ingest_time=self.delivery.received_at,
            delivery_id=self.delivery_id,
            storage=storage,
            link=link,
        )

    def artifact_url(self, location: _Location) -> str | None:
        if self.registry_url == UNKNOWN_REGISTRY_URL:
            return None
        return f"{self.registry_url}{location.repository}/{location.path}"


def _envelope(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InputError(f"body: expected a JSON object, got {type(payload).__name__}", field="body")
    # The JFrog event examples wrap the envelope as {"event": {...}}; deliveries send it bare.
    wrapped = payload.get("event")
    if "domain" not in payload and isinstance(wrapped, dict):
        return wrapped
    return payload


def _data(envelope: dict[str, Any]) -> dict[str, Any]:
    data = envelope.get("data")
    if isinstance(data, str):
        # The JFrog event examples carry data as a JSON string inside the JSON envelope. The body's pre-scan
        # saw that string as one token, so the embedded document gets limits of its own.
        try:
            data = parse_json(data.encode(), max_depth=_DATA_MAX_DEPTH, max_items=_DATA_MAX_ITEMS)
        except InputError as exc:
            raise InputError(
                f"data: the embedded JSON is refused: {exc.message}", field="data", code=exc.code
            ) from exc
    if data is None:
        raise InputError("data: required field is missing", field="data")
    if not isinstance(data, dict):
        raise InputError(f"data: expected an object, got {type(data).__name__}", field="data")
    return data


def _registry_url(jpd_origin: str | None) -> str:
    if jpd_origin is None:
        return UNKNOWN_REGISTRY_URL
    origin = jpd_origin.strip().rstrip("/")
    if not origin.startswith(("https://", "http://")):
        raise InputError(f"jpd_origin: {jpd_origin[:100]!r} is not an http(s) URL", field="jpd_origin")
    # Some instances send the origin with /artifactory already on it.
    scheme, _, rest = origin.removesuffix("/artifactory").partition("://")
    host, slash, path = rest.partition("/")
    if not host:
        raise InputError(f"jpd_origin: {jpd_origin[:100]!r} names no host", field="jpd_origin")
    return f"{scheme}://{host.lower()}{slash}{path}/artifactory/"


def _ulid_time(value: str, received_at: datetime) -> datetime | None:
    """The millisecond timestamp a ULID event id starts with, so ordering survives delayed redelivery."""
    if len(value) != 26:
        return None
    millis = 0
    for char in value[:10].upper():
        digit = _CROCKFORD.find(char)
        if digit < 0:
            return None
        millis = millis * 32 + digit
    latest = received_at + _ULID_FUTURE_SLACK
    if not _ULID_EARLIEST.timestamp() * 1000 <= millis <= latest.timestamp() * 1000:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


# --- events ---------------------------------------------------------------------------------------------


def _storage_events(
    context: _Context, domain: str, event_type: str, body: dict[str, Any]
) -> tuple[ArtifactEvent, ...]:
    digest = _digest(require_str(body, "data.sha256"), "data.sha256")
    here = _Location(require_str(body, "data.repo_key"), require_str(body, "data.path").strip("/"))
    location, previous = _locations(event_type, here, body)
    status: StorageStatus = "deleted" if event_type == "deleted" else "active"
    docker = domain == "docker"
    tag = optional_str(body, "data.tag") if docker else None
    file_name = optional_str(body, "data.name")
    storage = StorageBody(
        registry=_REGISTRY,
        registry_url=context.registry_url,
        repository=location.repository,
        path=location.path,
        artifact_url=context.artifact_url(location),
        name=(optional_str(body, "data.image_name") if docker else None) or file_name,
        tags=[tag] if tag else [],
        status=status,
        action=_ACTIONS[event_type],
        size=_size(body),
        previous_repository=previous.repository if previous else None,
        previous_path=previous.path if previous else None,
    )
    events = [
        context.event(
            discriminator=("storage", domain, event_type, digest, location.repository, location.path),
            digest=digest,
            storage=storage,
        )
    ]
    if docker and event_type != "deleted" and file_name == _INDEX_FILE:
        events.extend(_link_events(context, digest, body))
    return tuple(events)


def _locations(event_type: str, here: _Location, body: dict[str, Any]) -> tuple[_Location, _Location | None]:
    """(where the artifact is now, the location it left or None)."""
    target = _repo_path(body, "target", here)
    source = _repo_path(body, "source", here)
    if event_type in ("moved", "copied"):
        if target is None:
            raise InputError(
                f"data.target_repo_path: required for a {event_type} event", field="data.target_repo_path"
            )
        if event_type == "copied":
            return target, None
        left = source or here
        return target, (left if left != target else None)
    if event_type == "promoted":
        location = target or here
        came_from = source or (here if target else None)
        return location, (came_from if came_from != location else None)
    return here, None


def _repo_path(body: dict[str, Any], side: str, here: _Location) -> _Location | None:
    """``<side>_repo_path`` as ``repo/path`` or a bare repo key, else ``<side>_repo_key``; None if neither."""
    field = f"data.{side}_repo_path"
    value = optional_str(body, field)
    if value is None:
        field = f"data.{side}_repo_key"
        value = optional_str(body, field)
    if value is None:
        return None
    repository, slash, path = value.strip().strip("/").partition("/")
    if not repository:
        raise InputError(f"{field}: {value[:100]!r} names no repository", field=field)
    if not slash or not path:
        return _Location(repository, here.path)
    if value.strip().endswith("/"):
        # A folder target: the artifact keeps its file name inside it.
        path = f"{path}/{here.path.rsplit('/', 1)[-1]}"
    return _Location(repository, path)


def _link_events(context: _Context, index_digest: str, body: dict[str, Any]) -> list[ArtifactEvent]:
    platforms = optional(body, "data.platforms")
    if platforms is None:
        return []
    if not isinstance(platforms, list):
        raise InputError("data.platforms: expected an array", field="data.platforms")
    events = []
    for position, entry in enumerate(platforms):
        path = f"data.platforms[{position}]"
        if not isinstance(entry, dict):
            raise InputError(f"{path}: expected an object", field=path)
        platform_digest = _platform_digest(entry, path)
        if platform_digest is None or platform_digest == index_digest:
            continue
        link = LinkBody(index_digest=index_digest, platform_digest=platform_digest, platform=_platform(entry))
        for role, digest in (("index", index_digest), ("platform", platform_digest)):
            events.append(
                context.event(
                    discriminator=("link", role, index_digest, platform_digest), digest=digest, link=link
                )
            )
    return events


def _platform_digest(entry: dict[str, Any], path: str) -> str | None:
    for key in ("digest", "sha256"):
        value = entry.get(key)
        if isinstance(value, str) and value:
            return _digest(value, f"{path}.{key}")
    return None


def _platform(entry: dict[str, Any]) -> str | None:
    """``os/architecture[/variant]``, or None when os or architecture is missing."""
    os_name, architecture, variant = (entry.get(key) for key in ("os", "architecture", "variant"))
    if not (isinstance(os_name, str) and os_name and isinstance(architecture, str) and architecture):
        return None
    if isinstance(variant, str) and variant:
        return f"{os_name}/{architecture}/{variant}"
    return f"{os_name}/{architecture}"


def _size(body: dict[str, Any]) -> int | None:
    value = optional(body, "data.size")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError("data.size: expected a non-negative integer", field="data.size")
    return value


def _digest(value: str, path: str) -> str:
    try:
        return normalise_digest(value, field=path)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=path, code="invalid_digest") from exc
