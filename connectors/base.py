"""The seam between the HTTP edge and each source's parser.

The HTTP layer (``connectors.app``) reads the raw body, enforces size limits, checks the source's signature
or token over the raw bytes, and parses JSON with depth and count limits. Only then does it call the
source's parser, a pure function ``(Delivery, json) -> ParseResult``. A parser never does I/O; it either
returns canonical events, or raises ``InputError`` naming the field, which becomes a 400/422 answer and a
dead-letter record.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import ArtifactEvent


class InputError(LinkedArtifactsError):
    """The input is malformed, unsupported or inconsistent. The sender gets ``status``; the body is dead-lettered."""

    code = "invalid_input"
    dead_letter = True

    def __init__(self, message: str, *, field: str | None = None, status: int = 422, code: str | None = None) -> None:
        super().__init__(message, field=field, status=status)
        if code is not None:
            self.code = code


@dataclass(frozen=True)
class Delivery:
    """One HTTP request as a parser sees it."""

    endpoint: str
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    received_at: datetime
    query: Mapping[str, str] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    # Settings a token carries for its sender, e.g. the Kubernetes cluster and environment.
    sender: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @functools.cached_property
    def body_sha256(self) -> str:
        # Once per delivery: every event of a CloudEvents batch names it, and hashing a 200 KB batch again
        # for each of its 400 events was most of the connectors' parse time.
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True)
class ParseResult:
    """What a parser made of a delivery.

    ``events`` go to the events topic, ``attestations`` (raw bytes) to the attestations topic keyed by their
    sha256, and ``response`` is the JSON body answered to the sender (the metadata API's record shapes);
    when it is None the service answers ``{"accepted": n, "event_ids": [...]}``.
    """

    events: tuple[ArtifactEvent, ...] = ()
    ignored: bool = False
    note: str | None = None
    attestations: tuple[bytes, ...] = ()
    response: dict[str, Any] | None = None


def event_id(*parts: str | int | None) -> str:
    """A deterministic event id from source-derived parts: the same input always gives the same id."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def parse_time(value: Any, *, field: str) -> datetime:
    """RFC 3339 / ISO 8601 text or epoch seconds to an aware UTC datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise InputError(f"{field}: {value!r} is not a representable epoch time", field=field) from exc
    if not isinstance(value, str) or not value:
        raise InputError(f"{field}: expected an RFC 3339 time, got {type(value).__name__}", field=field)
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"{field}: {value[:60]!r} is not an RFC 3339 time", field=field) from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InputError(f"{field}: {value[:60]!r} is outside the representable time range", field=field) from exc


def require_digest(value: Any, *, field: str) -> str:
    """A normalised digest, or a 422 naming the field."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected a sha256 digest string", field=field, code="invalid_digest")
    try:
        return normalise_digest(value, field=field)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=field, code="invalid_digest") from exc


def require(obj: Any, path: str) -> Any:
    """``require(payload, "registry_package.package_version.version")``: the value, or InputError naming the path."""
    current = obj
    walked: list[str] = []
    for part in path.split("."):
        walked.append(part)
        if not isinstance(current, dict) or part not in current or current[part] is None:
            raise InputError(f"{'.'.join(walked)}: required field is missing", field=".".join(walked))
        current = current[part]
    return current


def optional(obj: Any, path: str) -> Any:
    current = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
        if current is None:
            return None
    return current


def require_str(obj: Any, path: str) -> str:
    value = require(obj, path)
    if not isinstance(value, str) or not value:
        raise InputError(f"{path}: expected a non-empty string", field=path)
    return value


def optional_str(obj: Any, path: str) -> str | None:
    value = optional(obj, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(f"{path}: expected a string, got {type(value).__name__}", field=path)
    return value or None
