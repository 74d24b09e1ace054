"""GitHub ``dependabot_alert`` and ``code_scanning_alert`` webhooks become repository-level alert events.

Neither names an artifact digest: the alert applies to a repository, and the stream processor reaches the
artifacts through their builds and provenance. So each event has ``scope="repository"``, ``digest=None``, the
repository ``owner/name`` and the key ``repo_key(repository.full_name)``. ``alert_key`` is a hash of the tool,
the repository and the alert number (numbers are unique per repository and tool), so every action on one
alert updates the same finding. The event id comes from ``X-GitHub-Delivery`` (a requested redelivery reuses
it); the event type from ``X-GitHub-Event``.

Dependabot (actions ``created``, ``dismissed``, ``fixed``, ``reintroduced``, ``reopened``, ``auto_dismissed``,
``auto_reopened``):

- ``vulnerability_id`` is the CVE when the advisory has one (it joins with scanner findings), else the GHSA
  id; the other identifiers are ``aliases``.
- state: ``open``, ``dismissed``, ``fixed``; ``auto_dismissed`` is ``dismissed``.
- severity lower case (``moderate``, the advisory database's word, is ``medium``).
- CVSS: the higher of ``cvss_severities.cvss_v3`` / ``cvss_v4`` scores, else the legacy ``cvss``; a score of 0
  means "not scored" and gives None.
- EPSS: ``security_advisory.epss.{percentage, percentile}``; GitHub may send a number as a string
  (``"0.16001e0"``), so values are read with ``float(str(x))``.
- purl: built from ecosystem and name (no version: the alert names a range, not an installed version).

Code scanning (actions ``appeared_in_branch``, ``closed_by_user``, ``created``, ``fixed``, ``reopened``,
``reopened_by_user``): no CVE, CVSS or EPSS.

- ``vulnerability_id`` is ``rule.id``; ``tool`` is ``alert.tool.name`` (e.g. CodeQL).
- severity: ``rule.security_severity_level`` when present, else the SARIF level ``rule.severity`` mapped
  ``error`` -> high, ``warning`` -> medium, ``note`` -> low, ``none`` -> unknown.
- state: ``alert.state``. GitHub sends null for alerts outside the default branch until they are fixed or
  dismissed; then the action decides (``fixed`` -> fixed, ``closed_by_user`` -> dismissed), else the state of
  the most recent instance (``most_recent_instance``, or the legacy ``instances[]``), else open.

``event_time`` is the alert's timestamp that fits the action (``created_at``, ``dismissed_at``, ``fixed_at``,
``auto_dismissed_at``, else ``updated_at``), falling back to ``updated_at`` then ``created_at``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from connectors.base import Delivery, InputError, ParseResult, event_id, parse_time
from linked_artifacts.events import AlertBody, AlertState, ArtifactEvent, Severity, Source, repo_key

__all__ = ["CODE_SCANNING_EVENT", "DEPENDABOT_EVENT", "parse_github_alert"]

DEPENDABOT_EVENT = "dependabot_alert"
CODE_SCANNING_EVENT = "code_scanning_alert"

_DEPENDABOT: Source = "dependabot"
_CODE_SCANNING: Source = "code-scanning"

# action -> the alert timestamp that says when that action happened
_DEPENDABOT_TIMES: dict[str, str] = {
    "created": "created_at",
    "dismissed": "dismissed_at",
    "fixed": "fixed_at",
    "auto_dismissed": "auto_dismissed_at",
    "reintroduced": "updated_at",
    "reopened": "updated_at",
    "auto_reopened": "updated_at",
}
_CODE_SCANNING_TIMES: dict[str, str] = {
    "created": "created_at",
    "appeared_in_branch": "updated_at",
    "closed_by_user": "dismissed_at",
    "fixed": "fixed_at",
    "reopened": "updated_at",
    "reopened_by_user": "updated_at",
}
_DEPENDABOT_STATES: dict[str, AlertState] = {
    "open": "open",
    "dismissed": "dismissed",
    "fixed": "fixed",
    "auto_dismissed": "dismissed",
}
_ALERT_STATES: dict[str, AlertState] = {"open": "open", "dismissed": "dismissed", "fixed": "fixed"}
# What a null code-scanning state means for the actions that settle it.
_CODE_SCANNING_ACTION_STATES: dict[str, AlertState] = {"fixed": "fixed", "closed_by_user": "dismissed"}
_SEVERITIES: dict[str, Severity] = {
    "critical": "critical",
    "high": "high",
    "medium": "medium",
    "moderate": "medium",
    "low": "low",
}
# SARIF levels are about the message, not the security impact; this is the conventional reading.
_SARIF_LEVELS: dict[str, Severity] = {"error": "high", "warning": "medium", "note": "low", "none": "unknown"}
# Dependabot ecosystem -> purl type (https://github.com/package-url/purl-spec types).
_PURL_TYPES = {
    "pip": "pypi",
    "npm": "npm",
    "maven": "maven",
    "go": "golang",
    "rubygems": "gem",
    "nuget": "nuget",
    "composer": "composer",
    "rust": "cargo",
    "pub": "pub",
    "actions": "github",
    "swift": "swift",
    "erlang": "hex",
}


def parse_github_alert(delivery: Delivery, payload: Any) -> ParseResult:
    """One ``dependabot_alert`` or ``code_scanning_alert`` delivery to one alert event."""
    event_type = delivery.header("X-GitHub-Event")
    if not event_type:
        raise _missing_header("X-GitHub-Event")
    if event_type == "ping":
        return ParseResult(ignored=True, note="ping: the webhook is set up; nothing to ingest")
    parser = _PARSERS.get(event_type)
    if parser is None:
        raise InputError(
            f"X-GitHub-Event: {event_type[:60]!r} is not an alert event (expected {DEPENDABOT_EVENT} or "
            f"{CODE_SCANNING_EVENT})",
            field="X-GitHub-Event",
            code="unsupported_event",
        )
    delivery_id = delivery.header("X-GitHub-Delivery")
    if not delivery_id:
        raise _missing_header("X-GitHub-Delivery")
    if not isinstance(payload, dict):
        raise InputError("$: expected a JSON object", field="$", status=400)
    source, body, event_time = parser(payload)
    event = ArtifactEvent(
        event_id=event_id(source, delivery_id, body.alert_key),
        key=repo_key(body.repository or ""),
        kind="alert",
        source=source,
        digest=None,
        event_time=event_time,
        ingest_time=delivery.received_at,
        delivery_id=delivery_id,
        alert=body,
    )
    return ParseResult(events=(event,))


def _parse_dependabot(payload: dict[str, Any]) -> tuple[Source, AlertBody, datetime]:
    action = _action(payload, _DEPENDABOT_TIMES)
    repository, alert, number = _envelope(payload)
    state = _DEPENDABOT_STATES.get(str(alert.get("state")))
    if state is None:
        raise InputError(
            "alert.state: expected open, dismissed, fixed or auto_dismissed", field="alert.state"
        )
    advisory = _object(alert.get("security_advisory"), "alert.security_advisory")
    vulnerability = _object(alert.get("security_vulnerability") or {}, "alert.security_vulnerability")
    ghsa, cve = _text(advisory.get("ghsa_id")), _text(advisory.get("cve_id"))
    primary = cve or ghsa
    if primary is None:
        raise InputError(
            "alert.security_advisory.ghsa_id: required field is missing",
            field="alert.security_advisory.ghsa_id",
        )
    identifiers = advisory.get("identifiers")
    others = (
        [i.get("value") for i in identifiers if isinstance(i, dict)] if isinstance(identifiers, list) else []
    )
    package = _object(
        _dig(alert, "dependency", "package") or vulnerability.get("package") or {}, "alert.dependency"
    )
    score, vector = _dependabot_cvss(advisory)
    epss = _object(advisory.get("epss") or {}, "alert.security_advisory.epss")
    body = AlertBody(
        alert_key=event_id(_DEPENDABOT, repository.lower(), number),
        scope="repository",
        repository=repository,
        vulnerability_id=primary,
        aliases=list(dict.fromkeys(a for a in (ghsa, *others) if isinstance(a, str) and a and a != primary)),
        package_name=_text(package.get("name")),
        purl=_purl(package.get("ecosystem"), package.get("name")),
        fixed_version=_text(_dig(vulnerability, "first_patched_version", "identifier")),
        severity=_severity(advisory.get("severity") or vulnerability.get("severity")),
        cvss_score=score,
        cvss_vector=vector,
        epss=_probability(epss.get("percentage"), "alert.security_advisory.epss.percentage"),
        epss_percentile=_probability(epss.get("percentile"), "alert.security_advisory.epss.percentile"),
        state=state,
        tool=_DEPENDABOT,
        title=_text(advisory.get("summary")),
        url=_text(alert.get("html_url")),
    )
    return _DEPENDABOT, body, _event_time(alert, _DEPENDABOT_TIMES[action])


def _parse_code_scanning(payload: dict[str, Any]) -> tuple[Source, AlertBody, datetime]:
    action = _action(payload, _CODE_SCANNING_TIMES)
    repository, alert, number = _envelope(payload)
    rule = _object(alert.get("rule"), "alert.rule")
    rule_id = _text(rule.get("id"))
    if rule_id is None:
        raise InputError("alert.rule.id: required field is missing", field="alert.rule.id")
    level = rule.get("security_severity_level")
    if isinstance(level, str) and level.lower() in _SEVERITIES:
        severity = _severity(level)
    else:
        severity = _SARIF_LEVELS.get(str(rule.get("severity")).lower(), "unknown")
    instance = _latest_instance(alert)
    message = _text(_dig(instance, "message", "text")) if instance else None
    body = AlertBody(
        alert_key=event_id(_CODE_SCANNING, repository.lower(), number),
        scope="repository",
        repository=repository,
        vulnerability_id=rule_id,
        severity=severity,
        state=_code_scanning_state(action, alert, instance),
        tool=_text(_dig(alert, "tool", "name")) or _CODE_SCANNING,
        title=_text(rule.get("description")) or _text(rule.get("name")) or message,
        url=_text(alert.get("html_url")),
    )
    return _CODE_SCANNING, body, _event_time(alert, _CODE_SCANNING_TIMES[action])


_PARSERS: dict[str, Callable[[dict[str, Any]], tuple[Source, AlertBody, datetime]]] = {
    DEPENDABOT_EVENT: _parse_dependabot,
    CODE_SCANNING_EVENT: _parse_code_scanning,
}


# --- shared parts ----------------------------------------------------------------------------------------


def _missing_header(name: str) -> InputError:
    return InputError(f"{name}: required header is missing", field=name, status=400, code="missing_header")


def _action(payload: dict[str, Any], supported: dict[str, str]) -> str:
    action = payload.get("action")
    if not isinstance(action, str) or action not in supported:
        shown = action[:40] if isinstance(action, str) else action
        raise InputError(
            f"action: unsupported action {shown!r} (expected {', '.join(supported)})",
            field="action",
            code="unsupported_event",
        )
    return action


def _envelope(payload: dict[str, Any]) -> tuple[str, dict[str, Any], int]:
    repository = _text(_dig(payload, "repository", "full_name"))
    if repository is None or "/" not in repository:
        raise InputError("repository.full_name: required field is missing", field="repository.full_name")
    alert = _object(payload.get("alert"), "alert")
    number = alert.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise InputError("alert.number: required integer is missing", field="alert.number")
    return repository, alert, number


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{path}: required object is missing", field=path)
    return value


def _dig(obj: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _severity(value: Any) -> Severity:
    return _SEVERITIES.get(value.strip().lower(), "unknown") if isinstance(value, str) else "unknown"


def _number(value: Any, path: str) -> float | None:
    """A number GitHub may send as a JSON number or as text (``"0.16001e0"``)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"{path}: expected a number", field=path)
    try:
        number = float(str(value))
    except ValueError as exc:
        raise InputError(f"{path}: expected a number, got {str(value)[:40]!r}", field=path) from exc
    if not math.isfinite(number):
        raise InputError(f"{path}: expected a finite number", field=path)
    return number


def _probability(value: Any, path: str) -> float | None:
    number = _number(value, path)
    if number is not None and not 0 <= number <= 1:
        raise InputError(f"{path}: expected a value between 0 and 1", field=path)
    return number


def _dependabot_cvss(advisory: dict[str, Any]) -> tuple[float | None, str | None]:
    best: tuple[float, str | None] | None = None
    candidates = [
        (_dig(advisory, "cvss_severities", version), f"alert.security_advisory.cvss_severities.{version}")
        for version in ("cvss_v4", "cvss_v3")
    ]
    for entry, path in candidates:
        if not isinstance(entry, dict):
            continue
        score = _number(entry.get("score"), f"{path}.score")
        if score is not None and 0 < score <= 10 and (best is None or score > best[0]):
            best = (score, _text(entry.get("vector_string")))
    if best is None:
        legacy = advisory.get("cvss")
        score = (
            _number(legacy.get("score"), "alert.security_advisory.cvss.score")
            if isinstance(legacy, dict)
            else None
        )
        # GitHub sends score 0 with a null vector for an advisory nobody scored.
        if score is not None and 0 < score <= 10 and isinstance(legacy, dict):
            best = (score, _text(legacy.get("vector_string")))
    return best if best is not None else (None, None)


def _purl(ecosystem: Any, name: Any) -> str | None:
    if not isinstance(ecosystem, str) or not isinstance(name, str) or not name:
        return None
    purl_type = _PURL_TYPES.get(ecosystem.lower())
    if purl_type is None:
        return None
    if purl_type == "maven" and ":" in name:
        name = name.replace(":", "/", 1)  # group:artifact -> namespace/name
    if name.startswith("@"):
        name = "%40" + name[1:]  # npm scopes: '@' is reserved in a purl
    return f"pkg:{purl_type}/{name}"


def _latest_instance(alert: dict[str, Any]) -> dict[str, Any] | None:
    instance = alert.get("most_recent_instance")
    if isinstance(instance, dict):
        return instance
    instances = alert.get("instances")  # payloads from before most_recent_instance existed
    if isinstance(instances, list) and instances and isinstance(instances[0], dict):
        first: dict[str, Any] = instances[0]
        return first
    return None


def _code_scanning_state(action: str, alert: dict[str, Any], instance: dict[str, Any] | None) -> AlertState:
    state = alert.get("state")
    if state is not None:
        known = _ALERT_STATES.get(str(state))
        if known is None:
            raise InputError("alert.state: expected open, dismissed, fixed or null", field="alert.state")
        return known
    if action in _CODE_SCANNING_ACTION_STATES:
        return _CODE_SCANNING_ACTION_STATES[action]
    instance_state = _ALERT_STATES.get(str(instance.get("state"))) if instance else None
    return instance_state or "open"


def _time(value: Any, *, field: str) -> datetime:
    """An RFC 3339 time string as aware UTC. ``base.parse_time`` lets out-of-range times escape as
    OverflowError/OSError (a 500); here they are the sender's 422 like any other bad time."""
    if not isinstance(value, str):
        raise InputError(f"{field}: expected an RFC 3339 time string", field=field)
    try:
        return parse_time(value, field=field)
    except (OverflowError, OSError, ValueError) as exc:
        raise InputError(f"{field}: {value[:60]!r} is out of range", field=field) from exc


def _event_time(alert: dict[str, Any], preferred: str) -> datetime:
    for name in (preferred, "updated_at", "created_at"):
        value = alert.get(name)
        if value:
            return _time(value, field=f"alert.{name}")
    raise InputError("alert.created_at: required field is missing", field="alert.created_at")
