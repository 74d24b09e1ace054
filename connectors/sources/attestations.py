"""Build provenance: an in-toto Statement v1 with a SLSA provenance v1 predicate, bare, in a DSSE envelope,
or in a Sigstore bundle (v0.1 to v0.3) whose DSSE envelope carries it.

Each distinct subject sha256 gives one ``build`` event keyed by that digest. The original request bytes are
kept as they came (``ParseResult.attestations``) and named by their sha256 (``attestation_sha256``): the JSON
is never re-serialised, since re-encoding changes the bytes a signature covers. Signatures are not verified
here; verification works on the stored bytes (``gh attestation verify`` or a Sigstore library).

``event_time`` is the Rekor ``integratedTime`` when the bundle has a transparency-log entry: it is when the
signature was logged, close to the end of the build, and it is the same on every upload of the same bundle.
A statement has no time of its own, and a bundle from a private repository has no Rekor entry, so those
fall back to the receive time.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.base import Delivery, InputError, ParseResult, event_id, optional, optional_str
from connectors.jsonlimits import parse_json
from connectors.sources.github import repository_from_url
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.events import ArtifactEvent, BuildBody

__all__ = ["parse_attestation"]

_SOURCE: Literal["attestation"] = "attestation"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUNDLE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    }
)
# actions/attest accepts up to 1024 subjects of a few values each; provenance itself is shallow and small.
_STATEMENT_MAX_DEPTH = 32
_STATEMENT_MAX_ITEMS = 50_000
_RUN = re.compile(r"/actions/runs/(\d+)/attempts/(\d+)")


def parse_attestation(delivery: Delivery, payload: Any) -> ParseResult:
    """Parse one uploaded attestation; raises ``InputError`` naming the offending field."""
    if not isinstance(payload, dict):
        raise InputError(f"body: expected a JSON object, got {type(payload).__name__}", field="body")
    statement, origin = _statement(payload)
    try:
        _check_versions(statement)
        build = _build_fields(statement)
        subjects = _subjects(statement)
    except InputError as exc:
        raise _located(exc, origin) from exc
    attestation_sha256 = delivery.body_sha256
    event_time = _integrated_time(payload) or delivery.received_at
    events = [
        ArtifactEvent(
            event_id=event_id(_SOURCE, attestation_sha256, digest),
            key=digest,
            kind="build",
            source=_SOURCE,
            digest=digest,
            event_time=event_time,
            ingest_time=delivery.received_at,
            delivery_id=attestation_sha256,
            build=build.model_copy(update={"attestation_sha256": attestation_sha256, "subject_name": name}),
        )
        for digest, name in subjects.items()
    ]
    return ParseResult(events=tuple(events), attestations=(delivery.body,))


# --- unwrapping -----------------------------------------------------------------------------------------


def _statement(payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The in-toto statement, and the field it was decoded from when it came wrapped."""
    if "mediaType" in payload:
        media_type = payload["mediaType"]
        if media_type not in BUNDLE_MEDIA_TYPES:
            raise InputError(
                f"mediaType: {str(media_type)[:100]!r} is not a supported Sigstore bundle media type "
                f"(expected one of {', '.join(sorted(BUNDLE_MEDIA_TYPES))})",
                field="mediaType",
                code="unsupported_version",
            )
        envelope = payload.get("dsseEnvelope")
        if not isinstance(envelope, dict):
            # A messageSignature bundle signs a blob, not a statement: there is no provenance to read.
            raise InputError("dsseEnvelope: required field is missing", field="dsseEnvelope")
        return _from_envelope(envelope, "dsseEnvelope."), "dsseEnvelope.payload"
    if "payloadType" in payload and "_type" not in payload:
        return _from_envelope(payload, ""), "payload"
    return payload, None


def _located(exc: InputError, origin: str | None) -> InputError:
    """Fields are named as paths in the statement; the message says where a wrapped statement came from."""
    if origin is None:
        return exc
    return InputError(
        f"{exc.message} (in the statement decoded from {origin})",
        field=exc.field,
        status=exc.status or 422,
        code=exc.code,
    )


def _from_envelope(envelope: dict[str, Any], prefix: str) -> dict[str, Any]:
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise InputError(
            f"{prefix}payloadType: {str(payload_type)[:100]!r} is not supported "
            f"(expected {IN_TOTO_PAYLOAD_TYPE})",
            field=f"{prefix}payloadType",
            code="unsupported_version",
        )
    field = f"{prefix}payload"
    encoded = envelope.get("payload")
    if not isinstance(encoded, str) or not encoded:
        raise InputError(f"{field}: required base64 string is missing", field=field)
    try:
        # DSSE allows standard and URL-safe base64; both are accepted, padded or not.
        text = encoded.strip().replace("-", "+").replace("_", "/")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise InputError(f"{field}: not valid base64", field=field) from exc
    try:
        # The body's pre-scan saw the payload as one string token, so the statement gets limits of its own.
        statement = parse_json(raw, max_depth=_STATEMENT_MAX_DEPTH, max_items=_STATEMENT_MAX_ITEMS)
    except InputError as exc:
        raise InputError(
            f"{field}: the decoded payload is not an acceptable JSON statement: {exc.message}",
            field=field,
            code=exc.code,
        ) from exc
    if not isinstance(statement, dict):
        raise InputError(f"{field}: the decoded statement is not a JSON object", field=field)
    return statement


def _check_versions(statement: dict[str, Any]) -> None:
    for name, expected in (("_type", STATEMENT_TYPE), ("predicateType", SLSA_PROVENANCE_V1)):
        value = statement.get(name)
        if value != expected:
            raise InputError(
                f"{name}: {str(value)[:100]!r} is not supported (expected {expected})",
                field=name,
                code="unsupported_version",
            )


def _integrated_time(bundle: dict[str, Any]) -> datetime | None:
    entries = optional(bundle, "verificationMaterial.tlogEntries")
    if not isinstance(entries, list):
        return None
    times = []
    for entry in entries:
        value = entry.get("integratedTime") if isinstance(entry, dict) else None
        # protobuf-JSON writes int64 as a string; accept a number too.
        if isinstance(value, str) and value.isdigit():
            times.append(int(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            times.append(value)
    positive = [seconds for seconds in times if seconds > 0]
    return datetime.fromtimestamp(min(positive), tz=UTC) if positive else None


# --- the statement --------------------------------------------------------------------------------------


def _subjects(statement: dict[str, Any]) -> dict[str, str | None]:
    """Distinct subject digests, first name kept, in statement order."""
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise InputError("subject: expected a non-empty array", field="subject")
    found: dict[str, str | None] = {}
    for index, subject in enumerate(subjects):
        path = f"subject[{index}]"
        if not isinstance(subject, dict):
            raise InputError(f"{path}: expected an object", field=path)
        value = optional(subject, "digest.sha256")
        if not isinstance(value, str) or not value:
            raise InputError(f"{path}.digest: a sha256 digest is required", field=f"{path}.digest")
        try:
            digest = normalise_digest(value, field=f"{path}.digest.sha256")
        except InvalidDigest as exc:
            raise InputError(exc.message, field=f"{path}.digest.sha256", code="invalid_digest") from exc
        name = subject.get("name")
        found.setdefault(digest, name if isinstance(name, str) and name else None)
    return found


def _build_fields(statement: dict[str, Any]) -> BuildBody:
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise InputError("predicate: required field is missing", field="predicate")
    where = "predicate"
    build_type = _required(predicate, "buildDefinition.buildType", where)
    builder_id = _required(predicate, "runDetails.builder.id", where)
    invocation_id = _optional(predicate, "runDetails.metadata.invocationId", where)
    repository_url = _optional(predicate, "buildDefinition.externalParameters.workflow.repository", where)
    run_id, attempt = _run(invocation_id)
    return BuildBody(
        repository=repository_from_url(repository_url) if repository_url else None,
        workflow_run_id=run_id,
        run_attempt=attempt,
        workflow_path=_optional(predicate, "buildDefinition.externalParameters.workflow.path", where),
        ref=_optional(predicate, "buildDefinition.externalParameters.workflow.ref", where),
        commit=_git_commit(predicate, where),
        builder_id=builder_id,
        build_type=build_type,
        invocation_id=invocation_id,
        predicate_type=SLSA_PROVENANCE_V1,
    )


def _git_commit(predicate: dict[str, Any], where: str) -> str | None:
    dependencies = optional(predicate, "buildDefinition.resolvedDependencies")
    if dependencies is None:
        return None
    if not isinstance(dependencies, list):
        field = f"{where}.buildDefinition.resolvedDependencies"
        raise InputError(f"{field}: expected an array", field=field)
    for dependency in dependencies:
        commit = optional(dependency, "digest.gitCommit")
        if isinstance(commit, str) and commit:
            return commit.lower()
    return None


def _run(invocation_id: str | None) -> tuple[int | None, int | None]:
    match = _RUN.search(invocation_id or "")
    if match is None:
        return None, None
    return int(match.group(1)), int(match.group(2))


def _required(obj: dict[str, Any], path: str, where: str) -> str:
    value = _optional(obj, path, where)
    if value is None:
        raise InputError(f"{where}.{path}: required field is missing", field=f"{where}.{path}")
    return value


def _optional(obj: dict[str, Any], path: str, where: str) -> str | None:
    try:
        return optional_str(obj, path)
    except InputError as exc:
        raise InputError(f"{where}.{exc.message}", field=f"{where}.{path}") from exc
