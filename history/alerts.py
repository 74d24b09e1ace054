"""Prioritised alerts: the filter language of :mod:`history.alert_filter`, ranked for triage.

Ranking (higher score first; at most 125 points)::

    score = severity + cvss + epss + exposure + environment

    severity     critical 40, high 30, medium 15, low 5, negligible or unknown 0
    cvss         2 x CVSS base score, rounded, at most 20          (no score: 0)
    epss         20 x EPSS probability, rounded, at most 20        (no score: 0)
    exposure     the most exposed current deployment of an affected artifact:
                 internet-exposed 25 + sensitive-data 10 + critical-resource 10 + lateral-movement 5,
                 at most 35, halved (rounded down) outside production
    environment  10 if an affected artifact is deployed in production, 5 if deployed only elsewhere,
                 0 if not deployed

    production   logical environment prod, production, prd or live (any case)
    ties         higher CVSS, then higher EPSS, then vulnerability id, subject, alert key
    rounding     ClickHouse round(): half to even

Severity leads because it is the scanner's own judgement; CVSS and EPSS refine it (how bad, how likely
to be exploited); exposure and environment are what only this system knows: whether the vulnerable
artifact runs, where, and how reachable it is. An internet-exposed production workload with a critical,
likely-exploited CVE scores 40 + 20 + 18 + 25 + 10 = 113. The points are computed in SQL
(``alert_context_at``, migration 0003), so ORDER BY, LIMIT and OFFSET happen in ClickHouse; each result
lists them as ``reasons`` such as "critical severity (+40)", "internet-exposed in prod (+25)",
"EPSS 0.92 (+18)".

An alert applies to an artifact family (an image index and its platform manifests): an alert on a
platform digest reaches its index and the index's deployments; a repository alert reaches every
family whose builds name that repository.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from history.alert_filter import CompiledFilter, compile_query, parse, render
from history.client import AS_OF_TYPE, Warehouse
from linked_artifacts.errors import LinkedArtifactsError

MAX_LIMIT: Final = 1_000
MAX_OFFSET: Final = 100_000

_ORDER: Final = (
    "score DESC, ifNull(cvss, -1) DESC, ifNull(epss, -1) DESC, vulnerability_id, subject, alert_key"
)


class InvalidParameter(LinkedArtifactsError):
    code = "invalid_parameter"


class RankedAlert(BaseModel):
    """One alert in triage order, with the points that put it there."""

    model_config = ConfigDict(frozen=True)

    rank: int
    score: int
    reasons: list[str]
    points: dict[str, int]
    alert_key: str
    subject: str
    scope: str
    vulnerability_id: str
    aliases: list[str]
    severity: str
    cvss: float | None
    epss: float | None
    state: str
    tool: str
    package: str | None
    fixed_version: str | None
    title: str | None
    url: str | None
    repository: str | None
    artifacts: list[str]
    deployed: bool
    environments: list[str]
    runtime_risks: list[str]
    registries: list[str]
    repositories: list[str]
    first_seen: datetime
    updated_at: datetime


class AlertSearch(BaseModel):
    """A page of ranked alerts and how many matched in all."""

    model_config = ConfigDict(frozen=True)

    query: str
    as_of: datetime | None
    total_count: int
    results: list[RankedAlert]


def reasons(row: dict[str, Any]) -> list[str]:
    """Human-readable reasons for a score, one per ranking term, from an ``alert_context_at`` row."""
    out = [f"{row['severity']} severity (+{row['severity_points']})"]
    cvss, epss = row["cvss"], row["epss"]
    out.append(f"CVSS {cvss:g} (+{row['cvss_points']})" if cvss is not None else "no CVSS score (+0)")
    out.append(f"EPSS {epss:g} (+{row['epss_points']})" if epss is not None else "no EPSS score (+0)")
    if not row["deployed"]:
        out.append("not deployed (+0)")
        return out
    environment = row["exposure_environment"] or "(no environment)"
    if row["exposure_points"] > 0:
        out.append(f"{', '.join(row['exposure_risks'])} in {environment} (+{row['exposure_points']})")
    else:
        out.append("no runtime risk asserted (+0)")
    if row["environment_points"] >= 10:
        production = [e for e in row["environments"] if e in ("prod", "production", "prd", "live")]
        out.append(f"deployed in production: {', '.join(production)} (+{row['environment_points']})")
    else:
        out.append(f"deployed outside production: {', '.join(row['environments'])} (+{row['environment_points']})")
    return out


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit must be between 1 and {MAX_LIMIT}", field="limit", status=400)
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidParameter(f"offset must be between 0 and {MAX_OFFSET}", field="offset", status=400)


def rank(
    warehouse: Warehouse,
    compiled: CompiledFilter,
    *,
    limit: int,
    offset: int = 0,
    families: Sequence[str] | None = None,
) -> tuple[int, list[RankedAlert]]:
    """Run a compiled filter; optionally only alerts that apply to the given family roots.

    Returns (total matching, the requested page).
    """
    _check_page(limit, offset)
    parameters: dict[str, Any] = dict(compiled.parameters)
    parameters.update(as_of=compiled.as_of, limit=limit, offset=offset)
    where = compiled.where
    if families is not None:
        parameters["families"] = list(families)
        where = f"({where}) AND hasAny(families, {{families:Array(String)}})"
    sql = (
        "SELECT *, count() OVER () AS total_count "
        f"FROM alert_context_at(as_of = {{as_of:{AS_OF_TYPE}}}) "
        f"WHERE {where} ORDER BY {_ORDER} "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt32}"
    )
    rows = warehouse.rows(sql, parameters)
    bodies = _alert_bodies(warehouse, rows)
    total = int(rows[0]["total_count"]) if rows else 0
    if not rows and offset > 0:
        # The page is past the end; count separately so the caller still learns the total.
        count_sql = (
            f"SELECT count() FROM alert_context_at(as_of = {{as_of:{AS_OF_TYPE}}}) WHERE {where}"
        )
        total = int(warehouse.query(count_sql, parameters).result_rows[0][0])
    return total, [_ranked(offset + i + 1, row, bodies.get(row["event_id"], {})) for i, row in enumerate(rows)]


def _alert_bodies(warehouse: Warehouse, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    # The ranking view carries no bodies (they would be read for every alert); fetch the page's from
    # the history by its sort key.
    if not rows:
        return {}
    found = warehouse.rows(
        "SELECT event_id, body FROM events "
        "WHERE key IN {keys:Array(String)} AND event_id IN {ids:Array(String)} LIMIT 1 BY event_id",
        {"keys": sorted({r["subject"] for r in rows}), "ids": sorted({r["event_id"] for r in rows})},
    )
    return {r["event_id"]: json.loads(r["body"]) for r in found if r["body"]}


def _ranked(position: int, row: dict[str, Any], body: dict[str, Any]) -> RankedAlert:
    points = {
        name: int(row[f"{name}_points"])
        for name in ("severity", "cvss", "epss", "exposure", "environment")
    }
    return RankedAlert(
        rank=position,
        score=int(row["score"]),
        reasons=reasons(row),
        points=points,
        alert_key=row["alert_key"],
        subject=row["subject"],
        scope=row["scope"],
        vulnerability_id=row["vulnerability_id"],
        aliases=list(body.get("aliases") or []),
        severity=row["severity"],
        cvss=row["cvss"],
        epss=row["epss"],
        state=row["state"],
        tool=row["tool"],
        package=row["package"] or None,
        fixed_version=body.get("fixed_version"),
        title=row["title"] or None,
        url=body.get("url"),
        repository=row["alert_repository"] or None,
        artifacts=list(row["families"]),
        deployed=bool(row["deployed"]),
        environments=list(row["environments"]),
        runtime_risks=list(row["runtime_risks"]),
        registries=list(row["registries"]),
        repositories=list(row["repositories"]),
        first_seen=row["first_seen"],
        updated_at=row["updated_at"],
    )


def search_alerts(warehouse: Warehouse, query: str, *, limit: int = 50, offset: int = 0) -> AlertSearch:
    """Alerts matching ``query`` (GitHub filter vocabulary), ranked; raises ``UnknownFilter`` /
    ``FilterError`` (status 400) for a bad query."""
    parsed = parse(query)
    total, results = rank(warehouse, compile_query(parsed), limit=limit, offset=offset)
    return AlertSearch(query=render(parsed), as_of=parsed.as_of, total_count=total, results=results)


def alerts(warehouse: Warehouse, query: str, *, limit: int = 50, offset: int = 0) -> list[RankedAlert]:
    """The ranked page of alerts matching ``query``; see :func:`search_alerts`."""
    return search_alerts(warehouse, query, limit=limit, offset=offset).results
