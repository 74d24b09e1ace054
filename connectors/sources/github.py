"""GitHub webhooks: packages (GHCR, GitHub Packages) become storage events, Actions runs become build events.

Handled ``X-GitHub-Event`` types:

- ``registry_package`` and ``package``, actions ``published`` and ``updated``. A container version gives one
  storage event for its manifest digest; GitHub fires once per manifest, so a multi-arch push arrives as one
  delivery for the index and one per platform. Its OCI ``revision`` label, when it is a commit SHA, also gives
  a build event for that digest. Other ecosystems (npm, Maven, ...) give one storage event per package file
  that carries a sha256; a version without any digest is acknowledged and ignored.
- ``workflow_run``, actions ``requested``, ``in_progress`` and ``completed``. A run names no artifact digest,
  so its build event is keyed by the run (``run:<owner/name>/<run id>``) with ``digest=None``; the stream
  processor joins it to digests through the provenance ``invocationId`` (``/actions/runs/<id>/attempts/<n>``).
- ``dependabot_alert`` and ``code_scanning_alert`` are parsed by ``connectors.sources.github_alerts``.
- ``ping`` and actions that change nothing are acknowledged with ``ignored=True``.

Every event id derives from ``X-GitHub-Delivery`` (a requested redelivery reuses it) plus what distinguishes
the events of one delivery, so a redelivery yields the same ids.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from connectors.base import (
    Delivery,
    InputError,
    ParseResult,
    event_id,
    optional,
    optional_str,
    parse_time,
    require,
    require_str,
)
from connectors.sources.github_alerts import parse_github_alert
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.events import ArtifactEvent, BuildBody, StorageBody, run_key

__all__ = ["parse_github", "repository_from_url"]

_SOURCE: Literal["github"] = "github"
_PACKAGE_EVENTS = frozenset({"registry_package", "package"})
_PACKAGE_ACTIONS = frozenset({"published", "updated"})
_RUN_ACTIONS = frozenset({"requested", "in_progress", "completed"})
_ALERT_EVENTS = frozenset({"dependabot_alert", "code_scanning_alert"})
_CONTAINER_TYPES = frozenset({"container", "docker"})
_GHCR_HOST = "ghcr.io"
# GitHub serialises unset package-version timestamps as Go's zero time; they must not order anything.
_ZERO_TIME_PREFIX = "0001-01-01"
_REVISION_LABEL = "org.opencontainers.image.revision"
_SOURCE_LABEL = "org.opencontainers.image.source"
# Labels are free text; only a full SHA-1 or SHA-256 commit id is trusted to join with provenance.
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def parse_github(delivery: Delivery, payload: Any) -> ParseResult:
    """Parse one GitHub webhook delivery; raises ``InputError`` naming the offending header or field."""
    event_type = delivery.header("X-GitHub-Event")
    if not event_type:
        raise _missing_header("X-GitHub-Event")
    if event_type == "ping":
        return ParseResult(ignored=True, note="ping: the webhook is set up; nothing to ingest")
    delivery_id = delivery.header("X-GitHub-Delivery")
    if not delivery_id:
        raise _missing_header("X-GitHub-Delivery")
    if event_type in _ALERT_EVENTS:
        return parse_github_alert(delivery, payload)
    if not isinstance(payload, dict):
        raise InputError(f"body: expected a JSON object, got {type(payload).__name__}", field="body")
    context = _Context(delivery, delivery_id)
    if event_type in _PACKAGE_EVENTS:
        return _parse_package(context, event_type, payload)
    if event_type == "workflow_run":
        return _parse_workflow_run(context, payload)
    raise InputError(
        f"X-GitHub-Event: {event_type[:60]!r} is not supported (expected registry_package, package, "
        "workflow_run, dependabot_alert, code_scanning_alert or ping)",
        field="X-GitHub-Event",
        code="unsupported_event",
    )


def repository_from_url(url: str) -> str | None:
    """``https://github.com/acme/app.git`` -> ``acme/app``. Other hosts keep their URL (without ``.git``),
    since a bare owner/name would be ambiguous across forges."""
    text = url.strip()
    if text.startswith("git+"):
        text = text[len("git+") :]
    parts = urlsplit(text)
    if not parts.scheme or not parts.netloc:
        return None
    segments = [s for s in parts.path.split("/") if s]
    if parts.netloc.lower() in ("github.com", "www.github.com"):
        if len(segments) < 2:
            return None
        # A resolvedDependencies uri appends the ref: git+https://github.com/acme/app@refs/heads/main
        name = segments[1].split("@", 1)[0].removesuffix(".git")
        return f"{segments[0]}/{name}" if name else None
    return text.rstrip("/").removesuffix(".git")


class _Context:
    """What every event of one delivery shares."""

    def __init__(self, delivery: Delivery, delivery_id: str) -> None:
        self.delivery = delivery
        self.delivery_id = delivery_id

    def event(
        self,
        *,
        discriminator: tuple[str | int | None, ...],
        key: str,
        digest: str | None,
        event_time: datetime,
        storage: StorageBody | None = None,
        build: BuildBody | None = None,
    ) -> ArtifactEvent:
        return ArtifactEvent(
            event_id=event_id(_SOURCE, self.delivery_id, *discriminator),
            key=key,
            kind="storage" if storage is not None else "build",
            source=_SOURCE,
            digest=digest,
            event_time=event_time,
            ingest_time=self.delivery.received_at,
            delivery_id=self.delivery_id,
            storage=storage,
            build=build,
        )

    def first_time(self, body: dict[str, Any], *paths: str) -> datetime:
        """The first usable timestamp among ``paths``; the receive time only when the source gives none."""
        for path in paths:
            value = optional(body, path)
            if (
                value is None
                or value == ""
                or (isinstance(value, str) and value.startswith(_ZERO_TIME_PREFIX))
            ):
                continue
            return parse_time(value, field=path)
        return self.delivery.received_at


# --- packages -------------------------------------------------------------------------------------------


def _parse_package(context: _Context, event_type: str, body: dict[str, Any]) -> ParseResult:
    action = require_str(body, "action")
    if action not in _PACKAGE_ACTIONS:
        return ParseResult(
            ignored=True, note=f"{event_type} {action}: only published and updated change storage"
        )
    package = _object(require(body, event_type), event_type)
    prefix = f"{event_type}.package_version"
    _object(require(body, prefix), prefix)
    event_time = context.first_time(
        body,
        f"{prefix}.updated_at",
        f"{prefix}.created_at",
        f"{event_type}.updated_at",
        f"{event_type}.created_at",
    )
    if _is_container(package):
        return ParseResult(events=_container_events(context, body, event_type, event_time))
    events = _package_file_events(context, body, event_type, event_time)
    if not events:
        return ParseResult(
            ignored=True, note=f"{prefix}: no package file carries a sha256, so there is no digest to record"
        )
    return ParseResult(events=events)


def _is_container(package: dict[str, Any]) -> bool:
    kinds = (
        optional(package, "package_type"),
        optional(package, "ecosystem"),
        optional(package, "registry.type"),
    )
    return any(isinstance(kind, str) and kind.lower() in _CONTAINER_TYPES for kind in kinds)


def _container_events(
    context: _Context, body: dict[str, Any], event_type: str, event_time: datetime
) -> tuple[ArtifactEvent, ...]:
    prefix = f"{event_type}.package_version"
    digest = _container_digest(body, prefix)
    image, url_tag = _split_package_url(optional_str(body, f"{prefix}.package_url"))
    host, _, image_path = image.partition("/") if image else ("", "", "")
    owner = _owner(body, event_type)
    name = require_str(body, f"{event_type}.name")
    on_ghcr = host.lower() == _GHCR_HOST or _is_ghcr_type(body, event_type)
    tag = optional_str(body, f"{prefix}.container_metadata.tag.name")
    if optional(body, f"{prefix}.container_metadata.tag") is None:
        tag = url_tag
    github_repository = optional_str(body, "repository.full_name")
    storage = StorageBody(
        registry="ghcr" if on_ghcr else "github-packages",
        registry_url=f"https://{host.lower()}/" if host else _registry_url(body, event_type, on_ghcr=on_ghcr),
        repository=image_path or f"{owner}/{name}",
        artifact_url=optional_str(body, f"{prefix}.html_url"),
        name=image or None,
        tags=[tag] if tag else [],
        action=_storage_action(body),
        size=_optional_int(body, f"{prefix}.container_metadata.manifest.size"),
        media_type=optional_str(body, f"{prefix}.container_metadata.manifest.media_type"),
        github_repository=github_repository,
    )
    events = [
        context.event(
            discriminator=("storage", digest),
            key=digest,
            digest=digest,
            event_time=event_time,
            storage=storage,
        )
    ]
    build = _label_build(body, prefix, github_repository)
    if build is not None:
        events.append(
            context.event(
                discriminator=("build", digest), key=digest, digest=digest, event_time=event_time, build=build
            )
        )
    return tuple(events)


def _container_digest(body: dict[str, Any], prefix: str) -> str:
    """The manifest digest. ``version`` and ``name`` carry it for GHCR; the legacy Docker registry may put a
    tag there, so the first candidate that is a digest wins and a malformed one is named in the error."""
    candidates = (f"{prefix}.version", f"{prefix}.name", f"{prefix}.container_metadata.manifest.digest")
    present = [
        (path, value) for path in candidates if isinstance(value := optional(body, path), str) and value
    ]
    for path, value in present:
        try:
            return normalise_digest(value, field=path)
        except InvalidDigest:
            continue
    if present:
        path, value = present[0]
        return _digest(value, path)
    raise InputError(
        f"{prefix}.version: required field is missing (the manifest digest)", field=f"{prefix}.version"
    )


def _split_package_url(url: str | None) -> tuple[str, str | None]:
    """``ghcr.io/acme/app:1.0`` -> (``ghcr.io/acme/app``, ``1.0``). GitHub sometimes sends
    ``ghcr.io/acme/app:`` for an untagged push, hence the trimmed colon."""
    if not url:
        return "", None
    ref = url.strip().rstrip(":").split("@", 1)[0]
    head, slash, last = ref.rpartition("/")
    if ":" in last:
        last, tag = last.split(":", 1)
        return f"{head}{slash}{last}", tag or None
    return ref, None


def _is_ghcr_type(body: dict[str, Any], event_type: str) -> bool:
    kinds = (optional(body, f"{event_type}.package_type"), optional(body, f"{event_type}.registry.type"))
    return any(isinstance(kind, str) and kind.upper() == "CONTAINER" for kind in kinds)


def _registry_url(body: dict[str, Any], event_type: str, *, on_ghcr: bool) -> str:
    if on_ghcr:
        return f"https://{_GHCR_HOST}/"
    url = optional_str(body, f"{event_type}.registry.url")
    if url:
        parts = urlsplit(url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc.lower()}/"
    kind = optional_str(body, f"{event_type}.package_type") or "maven"
    return f"https://{kind.lower()}.pkg.github.com/"


def _owner(body: dict[str, Any], event_type: str) -> str:
    owner = optional_str(body, f"{event_type}.owner.login") or optional_str(body, "organization.login")
    if not owner:
        raise InputError(
            f"{event_type}.owner.login: required field is missing", field=f"{event_type}.owner.login"
        )
    return owner


def _storage_action(body: dict[str, Any]) -> Literal["published", "updated"]:
    return "updated" if body.get("action") == "updated" else "published"


def _label_build(body: dict[str, Any], prefix: str, github_repository: str | None) -> BuildBody | None:
    labels_path = f"{prefix}.container_metadata.labels"
    labels = optional(body, f"{labels_path}.all_labels")
    labels = labels if isinstance(labels, dict) else {}
    revision = labels.get(_REVISION_LABEL) or optional(body, f"{labels_path}.revision")
    if not isinstance(revision, str) or not _COMMIT.fullmatch(revision.strip().lower()):
        return None
    source = labels.get(_SOURCE_LABEL) or optional(body, f"{labels_path}.source")
    repository = repository_from_url(source) if isinstance(source, str) else None
    return BuildBody(repository=repository or github_repository, commit=revision.strip().lower())


def _package_file_events(
    context: _Context, body: dict[str, Any], event_type: str, event_time: datetime
) -> tuple[ArtifactEvent, ...]:
    prefix = f"{event_type}.package_version"
    files = optional(body, f"{prefix}.package_files")
    if files is None:
        return ()
    if not isinstance(files, list):
        raise InputError(f"{prefix}.package_files: expected an array", field=f"{prefix}.package_files")
    owner = _owner(body, event_type)
    name = require_str(body, f"{event_type}.name")
    events = []
    for index, item in enumerate(files):
        path = f"{prefix}.package_files[{index}]"
        digest = _file_digest(item, path)
        if digest is None:
            continue
        file_name = optional_str(item, "name")
        storage = StorageBody(
            registry="github-packages",
            registry_url=_registry_url(body, event_type, on_ghcr=False),
            repository=f"{owner}/{name}",
            path=file_name,
            # Not the file's download_url: that is a short-lived pre-signed URL with a signature in it.
            artifact_url=optional_str(body, f"{prefix}.html_url"),
            name=name,
            version=optional_str(body, f"{prefix}.version"),
            action=_storage_action(body),
            size=_optional_int(item, "size", field=f"{path}.size"),
            media_type=optional_str(item, "content_type"),
            github_repository=optional_str(body, "repository.full_name"),
        )
        events.append(
            context.event(
                discriminator=("storage", digest, file_name),
                key=digest,
                digest=digest,
                event_time=event_time,
                storage=storage,
            )
        )
    return tuple(events)


def _file_digest(item: Any, path: str) -> str | None:
    if not isinstance(item, dict):
        raise InputError(f"{path}: expected an object", field=path)
    for key in ("sha256", "digest"):
        value = item.get(key)
        if isinstance(value, str) and value:
            return _digest(value, f"{path}.{key}")
    return None


# --- workflow runs --------------------------------------------------------------------------------------


def _parse_workflow_run(context: _Context, body: dict[str, Any]) -> ParseResult:
    action = require_str(body, "action")
    if action not in _RUN_ACTIONS:
        return ParseResult(ignored=True, note=f"workflow_run {action}: not a run state this system records")
    _object(require(body, "workflow_run"), "workflow_run")
    run_id = _require_int(body, "workflow_run.id")
    repository = optional_str(body, "repository.full_name") or require_str(
        body, "workflow_run.repository.full_name"
    )
    attempt = _optional_int(body, "workflow_run.run_attempt")
    build = BuildBody(
        repository=repository,
        workflow_run_id=run_id,
        run_attempt=attempt,
        workflow_name=optional_str(body, "workflow_run.name") or optional_str(body, "workflow.name"),
        workflow_path=optional_str(body, "workflow_run.path") or optional_str(body, "workflow.path"),
        status=optional_str(body, "workflow_run.status") or action,
        conclusion=optional_str(body, "workflow_run.conclusion"),
        commit=optional_str(body, "workflow_run.head_sha"),
        # head_branch is a bare branch (or tag) name; it cannot be told apart to build a full refs/... name.
        ref=optional_str(body, "workflow_run.head_branch"),
        run_url=optional_str(body, "workflow_run.html_url"),
    )
    event_time = context.first_time(
        body, "workflow_run.updated_at", "workflow_run.run_started_at", "workflow_run.created_at"
    )
    # One run fires requested, in_progress and completed with distinct deliveries; the action keeps the
    # ids distinct even if a sender reused a delivery id across them.
    event = context.event(
        discriminator=("build", run_id, attempt, action),
        key=run_key(repository, run_id),
        digest=None,
        event_time=event_time,
        build=build,
    )
    return ParseResult(events=(event,))


# --- small helpers --------------------------------------------------------------------------------------


def _missing_header(name: str) -> InputError:
    return InputError(f"{name}: required header is missing", field=name, status=400, code="missing_header")


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected an object, got {type(value).__name__}", field=path)
    return value


def _digest(value: str, path: str) -> str:
    try:
        return normalise_digest(value, field=path)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=path, code="invalid_digest") from exc


def _require_int(body: dict[str, Any], path: str) -> int:
    value = require(body, path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{path}: expected an integer, got {type(value).__name__}", field=path)
    return value


def _optional_int(obj: Any, path: str, *, field: str | None = None) -> int | None:
    value = optional(obj, path)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        name = field or path
        raise InputError(f"{name}: expected an integer, got {type(value).__name__}", field=name)
    return value
