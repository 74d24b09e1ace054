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
    ties         higher CVSS, then higher EPSS, then vulnerability id, subject, alert key, artifact
    rounding     ClickHouse round(): half to even

Severity leads because it is the scanner's own judgement; CVSS and EPSS refine it (how bad, how likely
to be exploited); exposure and environment are what only this system knows: whether the vulnerable
artifact runs, where, and how reachable it is. An internet-exposed production workload with a critical,
likely-exploited CVE scores 40 + 20 + 18 + 25 + 10 = 113. The points are computed in SQL
(:func:`context_sql`), so ORDER BY, LIMIT and OFFSET happen in ClickHouse; each result
lists them as ``reasons`` such as "critical severity (+40)", "internet-exposed in prod (+25)",
"EPSS 0.92 (+18)".

A result is an alert on one artifact family (an image index and its platform manifests, named by its
root digest): an alert on a platform digest reaches its index and the index's deployments; a
repository alert gives one result per family whose builds name that repository, each ranked by that
artifact's own exposure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from history.alert_filter import CompiledFilter, Node, compile_query, evaluate, parse, render
from history.client import Warehouse, as_of_parameters, relation
from history.deployed import compute_deployed, deployed_now
from history.snapshots import StampedSnapshot
from linked_artifacts.errors import LinkedArtifactsError

MAX_LIMIT: Final = 1_000
MAX_OFFSET: Final = 100_000
# An export (the triage page's CSV) reads everything the API could page through in one query: each query
# costs ~100 ms of planning, so pages of MAX_LIMIT made a 3,000-alert export take three times that.
MAX_EXPORT: Final = MAX_OFFSET + MAX_LIMIT

_ORDER: Final = "score DESC, ifNull(cvss, -1) DESC, ifNull(epss, -1) DESC, vulnerability_id, subject, alert_key, family"


class InvalidParameter(LinkedArtifactsError):
    code = "invalid_parameter"


class RankedAlert(BaseModel):
    """One alert on one artifact (family root digest), in triage order, with the points that put it there.

    A repository alert appears once per artifact built from that repository (``artifact`` None when
    no build names it)."""

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
    artifact: str | None
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
    """Human-readable reasons for a score, one per ranking term, from a :func:`context_sql` row."""
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


def _check_page(limit: int, offset: int, *, max_limit: int = MAX_LIMIT) -> None:
    if not 1 <= limit <= max_limit:
        raise InvalidParameter(f"limit must be between 1 and {max_limit}", field="limit", status=400)
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidParameter(f"offset must be between 0 and {MAX_OFFSET}", field="offset", status=400)


# The context of one (alert, artifact family) row, composed from the current-state views (or the
# as-of views) of migration 0003.
#
# Scope: "all" alerts; "deployed": only alerts on families deployed now (the filter can only match
# those); "families": only the families bound as {families:Array(String)} (the linked view). A scope
# is a set computed inside the query (ClickHouse is slow with large array parameters), so every later
# read of a current-state table goes by its sort key.
#
# ClickHouse re-runs a CTE at each reference. Where the server has materialized CTEs
# (enable_materialized_cte, ClickHouse 25.x+ and chDB 26.x) the shared sets are computed once; elsewhere
# the same query runs with inlined CTEs, with the same answers.
_CONTEXT_SQL: Final = """
WITH
    deployed AS {materialized}
    (
        SELECT
            if(r.root = '', d.digest, r.root) AS family,
            lowerUTF8(d.logical_environment) AS environment,
            arraySort(arrayDistinct(CAST(d.runtime_risks, 'Array(String)'))) AS risks,
            environment IN ('prod', 'production', 'prd', 'live') AS production,
            least(35, 25 * has(risks, 'internet-exposed') + 10 * has(risks, 'sensitive-data')
                + 10 * has(risks, 'critical-resource') + 5 * has(risks, 'lateral-movement')) AS full_points,
            if(production, full_points, intDiv(full_points, 2)) AS points
        FROM {deployments} AS d
        LEFT JOIN {deployed_roots} AS r ON r.digest = d.digest
        {where_member_d}
    ),
    scope AS {materialized} ({scope}),
    members AS {materialized}
    (
        SELECT family AS member FROM scope
        UNION ALL
        SELECT linked_digest AS member FROM {links}
        WHERE relation = 'platform' AND digest IN (SELECT family FROM scope)
    ),
    roots AS {materialized}
    (
        SELECT digest, root FROM {roots} {where_member_digest}
    ),
    build_families AS {materialized}
    (
        SELECT DISTINCT if(r.root = '', b.digest, r.root) AS family, b.repository AS build_repository
        FROM {build_subjects} AS b
        LEFT JOIN roots AS r ON r.digest = b.digest
        WHERE b.repository != '' {and_member_b}
    ),
    family_deployments AS
    (
        SELECT
            family,
            arraySort(groupUniqArray(environment)) AS f_environments,
            arraySort(groupUniqArrayArray(risks)) AS f_risks,
            max(points) AS f_exposure_points,
            argMax((environment, risks), (points, production, environment, risks)) AS f_exposure_top,
            max(if(production, 10, 5)) AS f_environment_points
        FROM deployed
        GROUP BY family
    ),
    family_storage AS
    (
        SELECT
            if(r.root = '', s.digest, r.root) AS family,
            arraySort(groupUniqArray(lowerUTF8(s.registry))) AS f_registries,
            arraySort(groupUniqArray(CAST(s.registry_host, 'String'))) AS f_registry_hosts
        FROM {storage} AS s
        LEFT JOIN roots AS r ON r.digest = s.digest
        WHERE s.status = 'active' {and_member_s}
        GROUP BY family
    ),
    family_builds AS
    (
        SELECT family, arraySort(groupUniqArray(build_repository)) AS f_repositories
        FROM build_families
        GROUP BY family
    ),
    pairs AS
    (
        SELECT a.*, if(r.root = '', a.subject, r.root) AS family
        FROM {alerts} AS a
        LEFT JOIN roots AS r ON r.digest = a.subject
        WHERE a.scope != 'repository' {and_member_a}
        UNION ALL
        SELECT a.*, b.family AS family
        FROM {alerts} AS a
        LEFT JOIN build_families AS b ON b.build_repository = a.repository
        WHERE a.scope = 'repository' {and_built_repo_a}
    )
SELECT
    a.subject AS subject, a.alert_key AS alert_key, a.family AS family, a.scope AS scope,
    a.repository AS alert_repository, a.vulnerability_id AS vulnerability_id, a.severity AS severity,
    a.cvss AS cvss, a.epss AS epss, a.state AS state, a.tool AS tool, a.package AS package, a.title AS title,
    a.updated_at AS updated_at, a.event_id AS event_id,
    fd.f_environments AS environments,
    fd.f_risks AS runtime_risks,
    fs.f_registries AS registries,
    fs.f_registry_hosts AS registry_hosts,
    arraySort(arrayDistinct(arrayConcat(if(a.repository = '', [], [a.repository]), fb.f_repositories)))
        AS repositories,
    toUInt8(notEmpty(fd.f_environments)) AS deployed,
    toUInt32(transform(CAST(a.severity, 'String'), ['critical', 'high', 'medium', 'low'], [40, 30, 15, 5], 0))
        AS severity_points,
    toUInt32(least(20, round(ifNull(a.cvss, 0) * 2))) AS cvss_points,
    toUInt32(least(20, round(ifNull(a.epss, 0) * 20))) AS epss_points,
    toUInt32(fd.f_exposure_points) AS exposure_points,
    fd.f_exposure_top.1 AS exposure_environment,
    fd.f_exposure_top.2 AS exposure_risks,
    toUInt32(fd.f_environment_points) AS environment_points,
    severity_points + cvss_points + epss_points + exposure_points + environment_points AS score
FROM pairs AS a
LEFT JOIN family_deployments AS fd ON fd.family = a.family
LEFT JOIN family_storage AS fs ON fs.family = a.family
LEFT JOIN family_builds AS fb ON fb.family = a.family
{where_in_scope}
"""

Scope = Literal["all", "deployed", "families"]

_SCOPES: Final[dict[str, str]] = {
    "all": "SELECT '' AS family WHERE 0",
    "deployed": "SELECT DISTINCT family FROM deployed",
    "families": "SELECT arrayJoin({families:Array(String)}) AS family",
}


def context_sql(as_of: datetime | None, *, scope: Scope = "all", materialize: bool = False) -> str:
    """SQL of the alert context rows: one per (alert, family), with everything filters and ranking use.

    Binds ``as_of`` when given, and ``families`` (``Array(String)``) for the "families" scope. Only
    fixed view names and fixed fragments are put into the text.
    """
    scoped = scope != "all"
    in_members = "IN (SELECT member FROM members)"
    fragments = {
        "materialized": "MATERIALIZED" if materialize else "",
        "roots": relation("digest_roots", as_of),
        "links": relation("links", as_of),
        "build_subjects": relation("build_subjects", as_of),
        "deployments": relation("deployments", as_of),
        "storage": relation("storage", as_of),
        "alerts": relation("alerts", as_of),
        "scope": _SCOPES[scope],
        "where_member_digest": f"WHERE digest {in_members}" if scoped else "",
        # Given families, only their deployments matter; the "deployed" scope needs every deployment.
        "deployed_roots": "roots" if scope == "families" else relation("digest_roots", as_of),
        "where_member_d": f"WHERE d.digest {in_members}" if scope == "families" else "",
        "and_member_b": f"AND b.digest {in_members}" if scoped else "",
        "and_member_s": f"AND s.digest {in_members}" if scoped else "",
        "and_member_a": f"AND a.subject {in_members}" if scoped else "",
        "and_built_repo_a": (
            "AND a.subject IN (SELECT concat('repo:', build_repository) FROM build_families)" if scoped else ""
        ),
        "where_in_scope": "WHERE a.family IN (SELECT family FROM scope)" if scoped else "",
    }
    settings = "join_use_nulls = 0" + (", enable_materialized_cte = 1" if materialize else "")
    return _CONTEXT_SQL.format(**fragments) + f"SETTINGS {settings}"


def rank(
    warehouse: Warehouse,
    compiled: CompiledFilter,
    *,
    limit: int,
    offset: int = 0,
    families: Sequence[str] | None = None,
    max_limit: int = MAX_LIMIT,
) -> tuple[int, list[RankedAlert]]:
    """Run a compiled filter and return (total matching, the requested page).

    ``families`` (root digests) limits the search to alerts on those artifacts (the linked view). When
    the filter can only match deployed artifacts, only alerts on deployed families are read: the fast
    path for ``has:deployment runtime-risk:...``. Without as-of and families, a current alert context
    snapshot (:data:`SNAPSHOT`) answers instead of either. ``max_limit`` is :data:`MAX_EXPORT` for an
    export, else the API's :data:`MAX_LIMIT`.
    """
    _check_page(limit, offset, max_limit=max_limit)
    parameters: dict[str, Any] = dict(compiled.parameters)
    parameters.update(limit=limit, offset=offset, **as_of_parameters(compiled.as_of))
    generation = SNAPSHOT.current_generation(warehouse) if families is None and compiled.as_of is None else None
    if generation is not None:
        # Every alert's context as of the current stamp: the filter, order and page run over stored rows.
        # A filter only deployed artifacts can match reads the deployed rows alone (the table's sort key).
        head, settings = SNAPSHOT.rows_sql(), " join_use_nulls = 0"
        if compiled.requires_deployment:
            head += " AND deployed = 1"
        parameters["snapshot_generation"] = generation
    else:
        if families is None and compiled.requires_deployment and compiled.expr is not None:
            composed = _rank_deployed(warehouse, compiled.expr, compiled.as_of, limit=limit, offset=offset)
            if composed is not None:
                return composed
        scope: Scope = "families" if families is not None else "deployed" if compiled.requires_deployment else "all"
        if families is not None:
            parameters["families"] = list(families)
        source = context_sql(compiled.as_of, scope=scope, materialize=warehouse.materialized_cte)
        head, settings = source.rsplit("SETTINGS", 1)
    sql = (
        f"SELECT *, count() OVER () AS total_count FROM ({head}) WHERE {compiled.where} "
        f"ORDER BY {_ORDER} LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}} SETTINGS{settings}"
    )
    rows = warehouse.rows(sql, parameters)
    total = int(rows[0]["total_count"]) if rows else 0
    if not rows and offset > 0:
        # The page is past the end; count separately so the caller still learns the total.
        count_sql = f"SELECT count() FROM ({head}) WHERE {compiled.where} SETTINGS{settings}"
        total = int(warehouse.query(count_sql, parameters).result_rows[0][0])
    details = _page_details(warehouse, rows)
    return total, [
        _ranked(offset + i + 1, row, details.get((row["subject"], row["alert_key"]), {})) for i, row in enumerate(rows)
    ]


# The columns of context_sql, in the snapshot table's order (migration 0007).
_CONTEXT_COLUMNS: Final = (
    "subject", "alert_key", "family", "scope", "alert_repository", "vulnerability_id", "severity", "cvss", "epss",
    "state", "tool", "package", "title", "updated_at", "event_id", "environments", "runtime_risks", "registries",
    "registry_hosts", "repositories", "deployed", "severity_points", "cvss_points", "epss_points", "exposure_points",
    "exposure_environment", "exposure_risks", "environment_points", "score",
)
_EVERY_CONTEXT, _CONTEXT_SETTINGS = context_sql(None).rsplit("SETTINGS", 1)
# Every alert's context now, kept by the sink after its inserts (history.snapshots): the search reads it while
# no event arrived since.
SNAPSHOT: Final = StampedSnapshot(
    table="alert_context_snapshot",
    columns=_CONTEXT_COLUMNS,
    marker="subject",
    marker_where="deployed = 0 AND subject = ''",  # the marker row's deployed is 0: found by the sort key
    compute=_EVERY_CONTEXT,
    settings=_CONTEXT_SETTINGS.strip(),
)


def refresh_alert_context_snapshot(warehouse: Warehouse) -> bool:
    """Write an alert context snapshot generation if any event arrived since the newest; True if it did."""
    return SNAPSHOT.refresh(warehouse)


# --- one family, scored in Python (the linked view) ---------------------------------------------------------
# The linked view has already read everything the ranking context of its family needs (deployments, storage,
# builds), so it scores that family's alerts here rather than planning the context query again. The terms
# are those of context_sql term by term; a test checks both give the same page on generated histories.
_SEVERITY_POINTS: Final = {"critical": 40, "high": 30, "medium": 15, "low": 5}
_RISK_POINTS: Final = (("internet-exposed", 25), ("sensitive-data", 10), ("critical-resource", 10),
                       ("lateral-movement", 5))
PRODUCTION: Final = ("prod", "production", "prd", "live")


class FamilyContext(NamedTuple):
    """What the ranking knows about one artifact family (the family_* CTEs of context_sql)."""

    environments: list[str]
    runtime_risks: list[str]
    exposure_points: int
    exposure_environment: str
    exposure_risks: list[str]
    environment_points: int
    registries: list[str]
    registry_hosts: list[str]
    repositories: list[str]


def family_context(
    *,
    deployments: Iterable[tuple[str, Sequence[str]]],
    active_storage: Iterable[tuple[str, str]],
    build_repositories: Iterable[str],
) -> FamilyContext:
    """The context of a family from its current deployments (lower-cased environment, runtime risks), its
    active storage (lower-cased registry kind, registry host) and the repositories its builds name."""
    environments: set[str] = set()
    risks_seen: set[str] = set()
    best: tuple[int, bool, str, list[str]] | None = None
    environment_points = 0
    for environment, raw_risks in deployments:
        risks = sorted(set(raw_risks))
        production = environment in PRODUCTION
        full = min(35, sum(points for risk, points in _RISK_POINTS if risk in risks))
        points = full if production else full // 2
        candidate = (points, production, environment, risks)
        best = candidate if best is None or candidate > best else best
        environments.add(environment)
        risks_seen.update(risks)
        environment_points = max(environment_points, 10 if production else 5)
    storage = list(active_storage)
    return FamilyContext(
        environments=sorted(environments),
        runtime_risks=sorted(risks_seen),
        exposure_points=best[0] if best else 0,
        exposure_environment=best[2] if best else "",
        exposure_risks=best[3] if best else [],
        environment_points=environment_points,
        registries=sorted({registry for registry, _ in storage}),
        registry_hosts=sorted({host for _, host in storage}),
        repositories=sorted(set(build_repositories)),
    )


def _round_half_even(value: float) -> int:
    # ClickHouse round() on Float64 rounds half to even, as Python's round() does.
    return round(value)


def _scored(alert: Mapping[str, Any], family: str, context: FamilyContext) -> dict[str, Any]:
    row = dict(alert)
    repository = str(alert["repository"])
    deployed = bool(context.environments)
    row.update(
        family=family,
        alert_repository=repository,
        environments=context.environments,
        runtime_risks=context.runtime_risks,
        registries=context.registries,
        registry_hosts=context.registry_hosts,
        repositories=sorted({*([repository] if repository else []), *context.repositories}),
        deployed=int(deployed),
        severity_points=_SEVERITY_POINTS.get(str(alert["severity"]), 0),
        cvss_points=min(20, _round_half_even((alert["cvss"] or 0.0) * 2)),
        epss_points=min(20, _round_half_even((alert["epss"] or 0.0) * 20)),
        exposure_points=context.exposure_points,
        exposure_environment=context.exposure_environment,
        exposure_risks=context.exposure_risks,
        environment_points=context.environment_points,
    )
    row["score"] = sum(row[f"{term}_points"] for term in ("severity", "cvss", "epss", "exposure", "environment"))
    return row


def _order_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    cvss = row["cvss"] if row["cvss"] is not None else -1.0
    epss = row["epss"] if row["epss"] is not None else -1.0
    return (-row["score"], -cvss, -epss, row["vulnerability_id"], row["subject"], row["alert_key"], row["family"])


def rank_family(
    warehouse: Warehouse,
    *,
    root: str,
    alerts: Iterable[Mapping[str, Any]],
    context: FamilyContext,
    limit: int,
    details: Callable[[list[dict[str, Any]]], dict[tuple[str, str], dict[str, Any]]] | None = None,
) -> list[RankedAlert]:
    """Rank the alerts of one family (root digest) as :func:`rank` with ``families=[root]`` does.

    ``alerts`` are current-state alert rows (the columns of ``alerts_current``) already narrowed to the
    family: non-repository alerts on its digests, and repository alerts of the repositories its builds
    name. Reads only the page's first-seen times and bodies, through ``details`` when the caller has them
    at hand (the linked view: history.family_events), else from the history.
    """
    _check_page(limit, 0)
    rows = sorted((_scored(alert, root, context) for alert in alerts), key=_order_key)[:limit]
    found = details(rows) if details is not None else _page_details(warehouse, rows)
    return [_ranked(i + 1, row, found.get((row["subject"], row["alert_key"]), {})) for i, row in enumerate(rows)]


# --- the deployed scope now, composed in Python -------------------------------------------------------------
# A filter that can only match deployed artifacts (has:deployment, runtime-risk:, environment: at the top level)
# reads only what touches the families deployed now, each table once by its sort key, and ranks in Python
# with the same terms and the filter's reference semantics (alert_filter.evaluate, which the property tests
# hold to the SQL). Planning context_sql's joined CTEs cost ~350 ms even on 10k events (chDB 26.9); these
# reads cost a few ms each on small histories. The deployments now come from history.deployed's snapshot
# when it is current.
class _Reads(NamedTuple):
    """The keyed reads of the deployed scope: from the state tables now, or the *_at views at a time."""

    roots: str
    platforms: str
    storage: str
    built: str
    alerts: str


_NOW: Final = _Reads(
    roots=(
        "SELECT digest, min(root) AS root FROM digest_root_state WHERE digest IN {ds:Array(String)} GROUP BY digest"
    ),
    platforms=(
        "SELECT DISTINCT linked_digest FROM link_state WHERE digest IN {ds:Array(String)} AND relation = 'platform'"
    ),
    storage=(
        "SELECT digest, registry_url, repository, path, status, lowerUTF8(registry) AS registry, registry_host, "
        "version FROM storage_state WHERE digest IN {ds:Array(String)}"
    ),
    built=(
        "SELECT DISTINCT digest, repository FROM build_subject_state "
        "WHERE digest IN {ds:Array(String)} AND repository != ''"
    ),
    alerts=(
        "SELECT subject, alert_key, scope, repository, vulnerability_id, severity, cvss, epss, state, tool, package, "
        "title, updated_at, event_id, version FROM alert_state WHERE subject IN {subjects:Array(String)}"
    ),
)


def _reads(as_of: datetime | None) -> _Reads:
    if as_of is None:
        return _NOW
    # The *_at views hold one row per entity already; version 0 lets _latest_rows keep it.
    return _Reads(
        roots=f"SELECT digest, root FROM {relation('digest_roots', as_of)} WHERE digest IN {{ds:Array(String)}}",
        platforms=(
            f"SELECT DISTINCT linked_digest FROM {relation('links', as_of)} "
            "WHERE digest IN {ds:Array(String)} AND relation = 'platform'"
        ),
        storage=(
            "SELECT digest, registry_url, repository, path, status, lowerUTF8(registry) AS registry, registry_host, "
            f"toUInt128(0) AS version FROM {relation('storage', as_of)} WHERE digest IN {{ds:Array(String)}}"
        ),
        built=(
            f"SELECT DISTINCT digest, repository FROM {relation('build_subjects', as_of)} "
            "WHERE digest IN {ds:Array(String)} AND repository != ''"
        ),
        # alerts_at for a few subjects: the same rows, read from the history by its sort key.
        alerts=(
            "SELECT key AS subject, alert_key, alert_scope AS scope, alert_repository AS repository, "
            "alert_vulnerability_id AS vulnerability_id, alert_severity AS severity, alert_cvss AS cvss, "
            "alert_epss AS epss, alert_state AS state, alert_tool AS tool, alert_package AS package, "
            "alert_title AS title, event_time AS updated_at, event_id, version FROM events "
            "WHERE key IN {subjects:Array(String)} AND kind = 'alert' AND event_time <= {as_of:DateTime64(6, 'UTC')} "
            "ORDER BY version DESC LIMIT 1 BY key, alert_key"
        ),
    )


# Keys per bound array: chDB 26.9 slows down far faster than linearly with the size of an IN array
# parameter (measured at 10M rows: 5,000 digests ~0.1 s, 20,000 digests ~50 s), so reads go in chunks.
IN_CHUNK: Final = 2_000


def _chunked(warehouse: Warehouse, sql: str, parameters: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    values = list(parameters[name])
    rows: list[dict[str, Any]] = []
    for start in range(0, max(1, len(values)), IN_CHUNK):
        rows.extend(warehouse.rows(sql, {**parameters, name: values[start:start + IN_CHUNK]}))
    return rows


def _latest_rows(
    warehouse: Warehouse, sql: str, parameters: Mapping[str, Any], key: Sequence[str]
) -> list[dict[str, Any]]:
    # One row per key, the highest version: what FINAL keeps, without merging whole granules. Each chunk
    # holds whole keys (the array is of the key's leading column), so versions of a key meet here.
    best: dict[tuple[Any, ...], dict[str, Any]] = {}
    name = "subjects" if "subjects" in parameters else "ds"
    for row in _chunked(warehouse, sql, parameters, name):
        identity = tuple(row[k] for k in key)
        if identity not in best or row["version"] > best[identity]["version"]:
            best[identity] = row
    return list(best.values())


def _roots(warehouse: Warehouse, digests: Iterable[str], as_of: datetime | None) -> dict[str, str]:
    wanted = sorted(set(digests))
    if not wanted:
        return {}
    found = {
        str(r["digest"]): str(r["root"])
        for r in _chunked(warehouse, _reads(as_of).roots, {"ds": wanted, **as_of_parameters(as_of)}, "ds")
    }
    return {d: found.get(d) or d for d in wanted}


def _contexts(
    warehouse: Warehouse,
    by_family: dict[str, list[tuple[str, list[str]]]],
    member_roots: dict[str, str],
    as_of: datetime | None,
) -> tuple[dict[str, FamilyContext], dict[str, set[str]]]:
    """The ranking context of each family, and the families built from each build repository."""
    parameters = {"ds": sorted(member_roots), **as_of_parameters(as_of)}
    storage: dict[str, list[tuple[str, str]]] = {}
    location = ("digest", "registry_url", "repository", "path")
    for row in _latest_rows(warehouse, _reads(as_of).storage, parameters, location):
        if row["status"] == "active":
            storage.setdefault(member_roots[row["digest"]], []).append((row["registry"], str(row["registry_host"])))
    built: dict[str, set[str]] = {}
    family_repositories: dict[str, set[str]] = {}
    for found in _chunked(warehouse, _reads(as_of).built, parameters, "ds"):
        digest, repository = found["digest"], found["repository"]
        built.setdefault(str(repository), set()).add(member_roots[str(digest)])
        family_repositories.setdefault(member_roots[str(digest)], set()).add(str(repository))
    contexts = {
        family: family_context(
            deployments=by_family.get(family, []),
            active_storage=storage.get(family, []),
            build_repositories=family_repositories.get(family, ()),
        )
        for family in by_family
    }
    return contexts, built


# Above this many deployed families the context query in SQL wins (measured at 10M rows: 1,000 families
# composed 1.1 s against 1.5 s in SQL; 5,000 families 5 s against 2.1 s: Python scores every pair).
MAX_COMPOSED_FAMILIES: Final = 2_000


def _rank_deployed(
    warehouse: Warehouse, expr: Node, as_of: datetime | None, *, limit: int, offset: int
) -> tuple[int, list[RankedAlert]] | None:
    """The deployed scope composed in Python, or None when there are too many deployed families for it."""
    deployed = deployed_now(warehouse) if as_of is None else compute_deployed(warehouse, as_of)
    if not deployed:
        return 0, []
    by_family: dict[str, list[tuple[str, list[str]]]] = {}
    for row in deployed:
        by_family.setdefault(row.root, []).append((row.environment, row.runtime_risks))
    if len(by_family) > MAX_COMPOSED_FAMILIES:
        return None
    scope = {"ds": sorted(by_family), **as_of_parameters(as_of)}
    platforms = [str(r["linked_digest"]) for r in _chunked(warehouse, _reads(as_of).platforms, scope, "ds")]
    member_roots = _roots(warehouse, [*by_family, *platforms], as_of)
    contexts, built = _contexts(warehouse, by_family, member_roots, as_of)
    repo_subjects = {"repo:" + r for r in built}
    alerts = _latest_rows(
        warehouse,
        _reads(as_of).alerts,
        {"subjects": sorted({*member_roots, *repo_subjects}), **as_of_parameters(as_of)},
        ("subject", "alert_key"),
    )
    matched: list[dict[str, Any]] = []
    for alert in alerts:
        if alert["scope"] != "repository":
            families = [member_roots[alert["subject"]]] if alert["subject"] in member_roots else []
        else:
            families = sorted(built.get(alert["repository"], ())) if alert["subject"] in repo_subjects else []
        # Only families deployed now: an alert on a platform whose family root is another index counts there.
        rows = (_scored(alert, family, contexts[family]) for family in families if family in contexts)
        matched.extend(row for row in rows if evaluate(expr, row))
    matched.sort(key=_order_key)
    page = matched[offset:offset + limit]
    details = _page_details(warehouse, page)
    return len(matched), [
        _ranked(offset + i + 1, row, details.get((row["subject"], row["alert_key"]), {})) for i, row in enumerate(page)
    ]


def _page_details(warehouse: Warehouse, rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    # The ranking view carries no bodies and no first-seen times (they would be read for every alert);
    # fetch the page's from the history, by its sort key.
    if not rows:
        return {}
    found = warehouse.rows(
        "SELECT key, alert_key, min(event_time) AS first_seen, "
        "argMaxIf(body, version, event_id IN {ids:Array(String)}) AS body "
        "FROM events WHERE key IN {keys:Array(String)} AND kind = 'alert' "
        "AND alert_key IN {alert_keys:Array(String)} GROUP BY key, alert_key",
        {
            "keys": sorted({r["subject"] for r in rows}),
            "alert_keys": sorted({r["alert_key"] for r in rows}),
            "ids": sorted({r["event_id"] for r in rows}),
        },
    )
    return {
        (r["key"], r["alert_key"]): {"first_seen": r["first_seen"], "body": json.loads(r["body"] or "{}")}
        for r in found
    }


def _ranked(position: int, row: dict[str, Any], details: dict[str, Any]) -> RankedAlert:
    body: dict[str, Any] = details.get("body") or {}
    points = {name: int(row[f"{name}_points"]) for name in ("severity", "cvss", "epss", "exposure", "environment")}
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
        artifact=row["family"] or None,
        deployed=bool(row["deployed"]),
        environments=list(row["environments"]),
        runtime_risks=list(row["runtime_risks"]),
        registries=list(row["registries"]),
        repositories=list(row["repositories"]),
        first_seen=details.get("first_seen") or row["updated_at"],
        updated_at=row["updated_at"],
    )


def search_alerts(
    warehouse: Warehouse, query: str, *, limit: int = 50, offset: int = 0, max_limit: int = MAX_LIMIT
) -> AlertSearch:
    """Alerts matching ``query`` (GitHub filter vocabulary), ranked; raises ``UnknownFilter`` /
    ``FilterError`` (status 400) for a bad query."""
    parsed = parse(query)
    total, results = rank(warehouse, compile_query(parsed), limit=limit, offset=offset, max_limit=max_limit)
    return AlertSearch(query=render(parsed), as_of=parsed.as_of, total_count=total, results=results)


def alerts(warehouse: Warehouse, query: str, *, limit: int = 50, offset: int = 0) -> list[RankedAlert]:
    """The ranked page of alerts matching ``query``; see :func:`search_alerts`."""
    return search_alerts(warehouse, query, limit=limit, offset=offset).results
