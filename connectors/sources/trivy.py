"""Trivy JSON reports (``trivy image --format json``, SchemaVersion 2) become digest-level alert events.

Subject digest. Trivy's JSON names no platform-manifest digest. ``Metadata.RepoDigests`` (``repo@sha256:…``)
holds the digest the tag resolved to: for a multi-arch tag scanned from a registry, the **index** digest; for
a single-platform image, its manifest digest. That digest is the subject: the stream processor's
index↔platform links carry the alerts to the platform digests. When several RepoDigests are listed, the one
whose repository matches ``Metadata.Reference`` / ``ArtifactName`` wins, else the first. ``Metadata.ImageID``
is the image *config* digest and is never used. A sender that knows better (e.g. it resolved the platform
manifest itself) names the digest with the query parameter ``?digest=sha256:…``, which wins.

One alert per (Target, VulnerabilityID, PkgID). ``Status`` (``fixed``, ``affected``, ``will_not_fix``, …) is
the *package's* fix state in the vendor's database, not the alert's: every finding in a report is an open
alert (``state="open"``); a fixed version, when known, goes to ``fixed_version``. CVSS: the highest
``V40Score`` or ``V3Score`` across the ``CVSS`` sources, with its vector (V2 scores are ignored: they rate on
another scale). Trivy reports no EPSS. ``event_time`` is ``CreatedAt``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from connectors.base import Delivery, InputError, ParseResult, event_id, parse_time
from linked_artifacts.digests import InvalidDigest, image_repository, normalise_digest
from linked_artifacts.events import AlertBody, ArtifactEvent, Severity, Source

__all__ = ["parse_trivy"]

SOURCE: Source = "trivy"
_SUPPORTED_SCHEMA = 2
# CVSS versions whose base scores are compared, newest first (a tie keeps the newer version's vector).
_CVSS_KEYS = (("V40Score", "V40Vector"), ("V3Score", "V3Vector"))


def parse_trivy(delivery: Delivery, payload: Any) -> ParseResult:
    """A Trivy SchemaVersion 2 report to one alert event per finding; see the module docstring."""
    if not isinstance(payload, dict):
        raise InputError("$: expected a Trivy JSON report object", field="$", status=400)
    version = payload.get("SchemaVersion")
    if version != _SUPPORTED_SCHEMA or isinstance(version, bool):
        raise InputError(
            f"SchemaVersion: unsupported Trivy report schema {str(version)[:20]!r}; only 2 is accepted",
            field="SchemaVersion",
            code="unsupported_version",
        )
    digest = _subject_digest(delivery, payload)
    created = payload.get("CreatedAt")
    event_time = _time(created, field="CreatedAt") if created is not None else delivery.received_at
    # The same report re-sent gives the same ids; a new scan of the same image has a new CreatedAt.
    report_token = created if isinstance(created, str) else f"body:{delivery.body_sha256}"
    results = payload.get("Results") or []
    if not isinstance(results, list):
        raise InputError("Results: expected an array", field="Results")
    events: dict[str, ArtifactEvent] = {}
    for r_index, result in enumerate(results):
        r_path = f"Results[{r_index}]"
        if not isinstance(result, dict):
            raise InputError(f"{r_path}: expected an object", field=r_path)
        target = _text(result.get("Target")) or ""
        vulnerabilities = result.get("Vulnerabilities") or []  # old Trivy sends null for none
        if not isinstance(vulnerabilities, list):
            raise InputError(
                f"{r_path}.Vulnerabilities: expected an array", field=f"{r_path}.Vulnerabilities"
            )
        for v_index, vuln in enumerate(vulnerabilities):
            alert = _alert(vuln, f"{r_path}.Vulnerabilities[{v_index}]", digest=digest, target=target)
            if alert.alert_key in events:
                continue  # the same package found twice in one target is one finding
            events[alert.alert_key] = ArtifactEvent(
                event_id=event_id(SOURCE, digest, report_token, alert.alert_key),
                key=digest,
                kind="alert",
                source=SOURCE,
                digest=digest,
                event_time=event_time,
                ingest_time=delivery.received_at,
                delivery_id=delivery.body_sha256,
                alert=alert,
            )
    note = None if events else f"no vulnerabilities reported for {digest}"
    return ParseResult(events=tuple(events.values()), ignored=not events, note=note)


def _time(value: Any, *, field: str) -> datetime:
    """An RFC 3339 time string as aware UTC. ``base.parse_time`` lets out-of-range times escape as
    OverflowError/OSError (a 500); here they are the sender's 422 like any other bad time."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected an RFC 3339 time string", field=field)
    try:
        return parse_time(value, field=field)
    except (OverflowError, OSError, ValueError) as exc:
        raise InputError(f"{field}: {value[:60]!r} is out of range", field=field) from exc


def _subject_digest(delivery: Delivery, report: dict[str, Any]) -> str:
    explicit = delivery.query.get("digest")
    if explicit:
        try:
            return normalise_digest(explicit, field="?digest")
        except InvalidDigest as exc:
            raise InputError(exc.message, field="?digest", code=exc.code) from exc
    metadata = report.get("Metadata")
    repo_digests = metadata.get("RepoDigests") if isinstance(metadata, dict) else None
    if not isinstance(repo_digests, list) or not repo_digests:
        raise InputError(
            "Metadata.RepoDigests: no image digest in the report (a filesystem scan, or an image never "
            "pushed); name the scanned digest with the query parameter ?digest=sha256:<64 hex>",
            field="Metadata.RepoDigests",
        )
    reference = metadata.get("Reference") if isinstance(metadata, dict) else None
    wanted = {
        image_repository(ref)
        for ref in (reference, report.get("ArtifactName"))
        if isinstance(ref, str) and ref
    }
    entries = [(index, entry) for index, entry in enumerate(repo_digests) if isinstance(entry, str) and entry]
    if not entries:
        raise InputError("Metadata.RepoDigests: expected repo@sha256:… strings", field="Metadata.RepoDigests")
    chosen = next(((i, e) for i, e in entries if image_repository(e) in wanted), entries[0])
    path = f"Metadata.RepoDigests[{chosen[0]}]"
    try:
        return normalise_digest(chosen[1], field=path)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=path, code=exc.code) from exc


def _alert(vuln: Any, path: str, *, digest: str, target: str) -> AlertBody:
    if not isinstance(vuln, dict):
        raise InputError(f"{path}: expected an object", field=path)
    vuln_id = vuln.get("VulnerabilityID")
    if not isinstance(vuln_id, str) or not vuln_id:
        raise InputError(
            f"{path}.VulnerabilityID: required field is missing", field=f"{path}.VulnerabilityID"
        )
    identifier = vuln.get("PkgIdentifier")
    purl = _text(identifier.get("PURL")) if isinstance(identifier, dict) else None
    pkg_name = _text(vuln.get("PkgName"))
    pkg_version = _text(vuln.get("InstalledVersion"))
    pkg_id = _text(vuln.get("PkgID")) or (f"{pkg_name}@{pkg_version}" if pkg_name else None)
    score, vector = _cvss(vuln.get("CVSS"), f"{path}.CVSS")
    vendor_ids = vuln.get("VendorIDs")
    aliases = [v for v in vendor_ids if isinstance(v, str) and v] if isinstance(vendor_ids, list) else []
    return AlertBody(
        alert_key=event_id(SOURCE, digest, vuln_id, purl or pkg_id, target),
        scope="digest",
        vulnerability_id=vuln_id,
        aliases=list(dict.fromkeys(a for a in aliases if a != vuln_id)),
        package_name=pkg_name,
        package_version=pkg_version,
        purl=purl,
        fixed_version=_text(vuln.get("FixedVersion")),
        severity=_severity(vuln.get("Severity")),
        cvss_score=score,
        cvss_vector=vector,
        state="open",
        tool=SOURCE,
        title=_text(vuln.get("Title")),
        url=_text(vuln.get("PrimaryURL")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _severity(value: Any) -> Severity:
    text = value.strip().lower() if isinstance(value, str) else ""
    for severity in ("critical", "high", "medium", "low"):
        if text == severity:
            return severity
    return "unknown"


def _cvss(value: Any, path: str) -> tuple[float | None, str | None]:
    """Highest V4.0 or V3 base score across the vendors, with its vector."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise InputError(f"{path}: expected an object keyed by source", field=path)
    best: tuple[float, str | None] | None = None
    for source in sorted(value):
        entry = value[source]
        if not isinstance(entry, dict):
            continue
        for score_key, vector_key in _CVSS_KEYS:
            score = entry.get(score_key)
            if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                continue
            if not 0 < score <= 10:  # 0 means "not scored"; anything above 10 is not a CVSS base score
                continue
            if best is None or score > best[0]:
                vector = entry.get(vector_key)
                best = (float(score), vector if isinstance(vector, str) and vector else None)
    return best if best is not None else (None, None)
