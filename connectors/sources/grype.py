"""Grype JSON reports (``grype <image> -o json``) become digest-level alerts and index↔platform links.

Subject digest: ``source.target.manifestDigest``, the **platform manifest** Grype resolved and scanned. When
``source.target.repoDigests`` names a different digest (the index a multi-arch tag resolved to), the report
also yields two ``link`` events per index (one keyed by each digest): that is how a scan of one platform
reaches the index that deployments and pushes name. Without a manifestDigest (some daemon or archive scans),
the first repoDigest is the subject. The query parameter ``?digest=sha256:…`` names the subject explicitly
and wins. ``source.target.imageID`` is the config digest and is never used.

One alert per match (``ignoredMatches``, suppressed by the user's Grype config, are left out). Severity is
read case-insensitively (``Negligible`` -> ``negligible``). CVSS: the highest ``metrics.baseScore`` across
``vulnerability.cvss[]`` and every ``relatedVulnerabilities[].cvss[]``, with its vector; EPSS: the highest
``epss[].epss`` across the same records, with its percentile. ``aliases`` are the related vulnerability ids
(Grype's primary id is often a GHSA, the CVE being related). A finding is an open alert; ``fixed_version``
is the suggested fix, else the first ``fix.versions``. ``event_time`` is ``descriptor.timestamp``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from connectors.base import Delivery, InputError, ParseResult, event_id, parse_time
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.events import AlertBody, ArtifactEvent, LinkBody, Severity, Source

__all__ = ["parse_grype"]

SOURCE: Source = "grype"
_SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "negligible", "unknown")
# Grype has no title; the first line of the description, clipped, serves as one.
_TITLE_CHARS = 200


def parse_grype(delivery: Delivery, payload: Any) -> ParseResult:
    """A Grype JSON report to alert events (and links); see the module docstring."""
    if not isinstance(payload, dict):
        raise InputError("$: expected a Grype JSON report object", field="$", status=400)
    matches = payload.get("matches")
    if matches is None:
        matches = []
    if not isinstance(matches, list):
        raise InputError("matches: expected an array", field="matches")
    target = _image_target(payload)
    manifest_digest = _digest_at(target, "manifestDigest", "source.target.manifestDigest")
    repo_digests = _repo_digests(target)
    subject = _subject(delivery, manifest_digest, repo_digests)
    descriptor = payload.get("descriptor")
    timestamp = descriptor.get("timestamp") if isinstance(descriptor, dict) else None
    event_time = (
        _time(timestamp, field="descriptor.timestamp") if timestamp is not None else delivery.received_at
    )
    # The same report re-sent gives the same ids; a new scan has a new timestamp.
    report_token = timestamp if isinstance(timestamp, str) else f"body:{delivery.body_sha256}"

    def envelope(*, eid: str, key: str, **body: Any) -> ArtifactEvent:
        return ArtifactEvent(
            event_id=eid,
            key=key,
            source=SOURCE,
            digest=key,
            event_time=event_time,
            ingest_time=delivery.received_at,
            delivery_id=delivery.body_sha256,
            **body,
        )

    events: list[ArtifactEvent] = []
    if manifest_digest is not None:
        platform = _platform(target)
        for index_digest in repo_digests:
            if index_digest == manifest_digest:
                continue  # a single-platform image: its repo digest is the manifest itself
            link = LinkBody(index_digest=index_digest, platform_digest=manifest_digest, platform=platform)
            # A link is a timeless fact: every scan that shows it gives the same ids.
            for key, side in ((index_digest, "index"), (manifest_digest, "platform")):
                eid = event_id(SOURCE, "link", index_digest, manifest_digest, side)
                events.append(envelope(eid=eid, key=key, kind="link", link=link))
    alerts: dict[str, ArtifactEvent] = {}
    for position, match in enumerate(matches):
        alert = _alert(match, f"matches[{position}]", digest=subject)
        if alert.alert_key not in alerts:
            eid = event_id(SOURCE, subject, report_token, alert.alert_key)
            alerts[alert.alert_key] = envelope(eid=eid, key=subject, kind="alert", alert=alert)
    events.extend(alerts.values())
    note = None if alerts else f"no vulnerabilities reported for {subject}"
    return ParseResult(events=tuple(events), ignored=not events, note=note)


def _time(value: Any, *, field: str) -> datetime:
    """An RFC 3339 time string as aware UTC. ``base.parse_time`` lets out-of-range times escape as
    OverflowError/OSError (a 500); here they are the sender's 422 like any other bad time."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected an RFC 3339 time string", field=field)
    try:
        return parse_time(value, field=field)
    except (OverflowError, OSError, ValueError) as exc:
        raise InputError(f"{field}: {value[:60]!r} is out of range", field=field) from exc


def _image_target(report: dict[str, Any]) -> dict[str, Any]:
    source = report.get("source")
    if not isinstance(source, dict):
        raise InputError("source: required object is missing", field="source")
    target = source.get("target")
    # Directory, file and SBOM scans give a plain path here: no image, so no digest unless ?digest= names one.
    return target if isinstance(target, dict) else {}


def _digest_at(obj: dict[str, Any], name: str, path: str) -> str | None:
    value = obj.get(name)
    if value is None or value == "":
        return None
    return _as_digest(value, path)


def _as_digest(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{path}: expected a digest string", field=path)
    try:
        return normalise_digest(value, field=path)
    except InvalidDigest as exc:
        raise InputError(exc.message, field=path, code=exc.code) from exc


def _repo_digests(target: dict[str, Any]) -> list[str]:
    entries = target.get("repoDigests")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError("source.target.repoDigests: expected an array", field="source.target.repoDigests")
    digests: list[str] = []
    for index, entry in enumerate(entries):
        path = f"source.target.repoDigests[{index}]"
        if not isinstance(entry, str) or "@" not in entry:
            raise InputError(f"{path}: expected repo@sha256:…", field=path)
        digest = _as_digest(entry, path)
        if digest not in digests:
            digests.append(digest)
    return digests


def _subject(delivery: Delivery, manifest_digest: str | None, repo_digests: list[str]) -> str:
    explicit = delivery.query.get("digest")
    if explicit:
        return _as_digest(explicit, "?digest")
    if manifest_digest is not None:
        return manifest_digest
    if repo_digests:
        return repo_digests[0]
    raise InputError(
        "source.target.manifestDigest: no image digest in the report (not an image scan, or an image never "
        "pushed); name the scanned digest with the query parameter ?digest=sha256:<64 hex>",
        field="source.target.manifestDigest",
    )


def _platform(target: dict[str, Any]) -> str | None:
    parts = [target.get("os"), target.get("architecture"), target.get("variant")]
    if not all(isinstance(p, str) and p for p in parts[:2]):
        return None
    return "/".join(p for p in parts if isinstance(p, str) and p)


def _records(match: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """The vulnerability record and its related records: where CVSS and EPSS may sit."""
    vulnerability = match.get("vulnerability")
    if not isinstance(vulnerability, dict):
        raise InputError(f"{path}.vulnerability: required object is missing", field=f"{path}.vulnerability")
    related = match.get("relatedVulnerabilities") or []
    if not isinstance(related, list):
        raise InputError(
            f"{path}.relatedVulnerabilities: expected an array", field=f"{path}.relatedVulnerabilities"
        )
    return [vulnerability, *(r for r in related if isinstance(r, dict))]


def _alert(match: Any, path: str, *, digest: str) -> AlertBody:
    if not isinstance(match, dict):
        raise InputError(f"{path}: expected an object", field=path)
    records = _records(match, path)
    vulnerability = records[0]
    vuln_id = vulnerability.get("id")
    if not isinstance(vuln_id, str) or not vuln_id:
        raise InputError(
            f"{path}.vulnerability.id: required field is missing", field=f"{path}.vulnerability.id"
        )
    artifact = match.get("artifact")
    if not isinstance(artifact, dict):
        raise InputError(f"{path}.artifact: required object is missing", field=f"{path}.artifact")
    name, version, purl = (
        _text(artifact.get("name")),
        _text(artifact.get("version")),
        _text(artifact.get("purl")),
    )
    locations = artifact.get("locations")
    first = locations[0] if isinstance(locations, list) and locations else None
    location = _text(first.get("path")) if isinstance(first, dict) else None
    score, vector = _cvss(records)
    epss, percentile = _epss(records)
    related_ids = [r.get("id") for r in records[1:]]
    return AlertBody(
        alert_key=event_id(SOURCE, digest, vuln_id, purl or f"{name}@{version}", location),
        scope="digest",
        vulnerability_id=vuln_id,
        aliases=list(dict.fromkeys(i for i in related_ids if isinstance(i, str) and i and i != vuln_id)),
        package_name=name,
        package_version=version,
        purl=purl,
        fixed_version=_fixed_version(match, vulnerability),
        severity=_severity(vulnerability.get("severity")),
        cvss_score=score,
        cvss_vector=vector,
        epss=epss,
        epss_percentile=percentile,
        state="open",
        tool=SOURCE,
        title=_title(vulnerability.get("description")),
        url=_text(vulnerability.get("dataSource")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _title(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:_TITLE_CHARS] or None


def _severity(value: Any) -> Severity:
    text = value.strip().lower() if isinstance(value, str) else ""
    return next((s for s in _SEVERITIES if s == text), "unknown")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _cvss(records: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    best: tuple[float, str | None] | None = None
    for record in records:
        entries = record.get("cvss")
        for entry in entries if isinstance(entries, list) else []:
            metrics = entry.get("metrics") if isinstance(entry, dict) else None
            score = _number(metrics.get("baseScore")) if isinstance(metrics, dict) else None
            if score is None or not 0 < score <= 10:
                continue
            if best is None or score > best[0]:
                best = (score, _text(entry.get("vector")))
    return best if best is not None else (None, None)


def _epss(records: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    best: tuple[float, float | None] | None = None
    for record in records:
        entries = record.get("epss")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            probability = _number(entry.get("epss"))
            if probability is None or not 0 <= probability <= 1:
                continue
            if best is None or probability > best[0]:
                percentile = _number(entry.get("percentile"))
                best = (probability, percentile if percentile is not None and 0 <= percentile <= 1 else None)
    return best if best is not None else (None, None)


def _fixed_version(match: dict[str, Any], vulnerability: dict[str, Any]) -> str | None:
    details = match.get("matchDetails")
    for detail in details if isinstance(details, list) else []:
        fix = detail.get("fix") if isinstance(detail, dict) else None
        suggested = _text(fix.get("suggestedVersion")) if isinstance(fix, dict) else None
        if suggested:
            return suggested
    fix = vulnerability.get("fix")
    versions = fix.get("versions") if isinstance(fix, dict) else None
    if isinstance(versions, list):
        return next((v for v in versions if isinstance(v, str) and v), None)
    return None
