"""The artifacts summary: one row per artifact family, the shape the artifacts list and the overview read.

An artifact is a family (an image index and its platform manifests; a digest nothing links is a family of
one), identified by its root digest, as in the linked view and the alert ranking. Its alerts are the
alerts on any digest of the family plus the repository alerts of its build repositories: the alerts the
linked view lists.

Computing the summary reads seven of history's views (migration 0003) once each and folds ~25 aggregates
over them. On chDB 26.9 most of that time is *planning* (~125 of ~160 ms on the demo organisation), and it
grows with every relation the query names. So a writer keeps the current summary in a stamped snapshot
(:mod:`history.snapshots`, migration 0006) after each write batch: :func:`refresh_summary_snapshot`. A reader
(:func:`summary_source`) uses it only while its change stamp is current, and otherwise computes the summary
from the views: a stale or missing snapshot costs time, never a wrong answer. As-of reads always compute.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from history.client import Warehouse, as_of_parameters, relation
from history.snapshots import StampedSnapshot

SEVERITY_ORDER: Final = ("critical", "high", "medium", "low", "negligible", "unknown")
PRODUCTION: Final = ("prod", "production", "prd", "live")  # as the alert ranking (history/alerts.py)
# Tags shown per artifact: the latest few tell a reader which release it is; the page lists them all.
LIST_TAGS: Final = 6
_RELATIONS: Final = (
    "storage", "build_subjects", "deployments", "deployment_states", "alerts", "links", "digest_roots",
)

# One row per fact that makes an artifact, in one shape so a single GROUP BY builds every column.
# Each source is read once (see the module docstring on planning cost).
_FACTS: Final = """
facts AS
(
    SELECT digest, 'storage' AS fact,
        CAST(if(status = 'active', lowerUTF8(registry), ''), 'String') AS f_registry,
        CAST(if(status = 'active', registry_host, ''), 'String') AS f_registry_host,
        if(status = 'active', tags, CAST([], 'Array(String)')) AS f_tags,
        JSONExtractString(body, 'name') AS f_name, if(action = 'observed', 1, 2) AS f_name_rank,
        '' AS f_repository, '' AS f_environment, '' AS f_cluster,
        CAST([], 'Array(String)') AS f_risks, '' AS f_alert, '' AS f_severity, '' AS f_state,
        CAST(NULL, 'Nullable(Float64)') AS f_cvss, CAST(NULL, 'Nullable(Float64)') AS f_epss, updated_at AS f_time
    FROM @storage@
    UNION ALL
    SELECT digest, 'build', '', '', [], JSONExtractString(body, 'subject_name'), 0, repository, '', '', [], '', '',
        '', NULL, NULL, updated_at
    FROM @build_subjects@
    UNION ALL
    SELECT digest, 'deployment', '', '', [], JSONExtractString(body, 'name'), 0, '', lowerUTF8(logical_environment),
        CAST(cluster, 'String'), CAST(runtime_risks, 'Array(String)'), '', '', '', NULL, NULL, updated_at
    FROM @deployments@
    UNION ALL
    -- Every digest that ever held a deployment slot, deployed now or not: the list keeps artifacts whose
    -- only trace is a past deployment (a superseded or decommissioned image nobody stored).
    SELECT digest, 'slot', '', '', [], JSONExtractString(body, 'name'), 0, '', '', '', [], '', '', '', NULL, NULL,
        updated_at
    FROM @deployment_states@
    WHERE digest != ''
    UNION ALL
    -- Alerts: a digest's own, and a repository's on every digest whose builds name that repository (as in
    -- the ranking); f_alert names the alert, so a family with several such digests counts it once. One
    -- read of the alerts with a join that only repository alerts can match (build repositories are never
    -- ''): cheaper to plan than a second branch over the alerts.
    SELECT if(a.scope = 'repository', b.digest, a.subject), 'alert', '', '', [], '', 0, '', '', '', [],
        concat(a.subject, ' ', a.alert_key), CAST(a.severity, 'String'), CAST(a.state, 'String'), a.cvss, a.epss,
        a.updated_at
    FROM @alerts@ AS a
    LEFT JOIN (SELECT DISTINCT digest, repository FROM @build_subjects@ WHERE repository != '') AS b
        ON b.repository = if(a.scope = 'repository', a.repository, '')
    WHERE a.scope != 'repository' OR b.digest != ''
    UNION ALL
    SELECT digest, 'link', '', '', [], '', 0, '', '', '', [], '', '', '', NULL, NULL, linked_at
    FROM @links@
)"""

_OPEN_COUNTS: Final = ",\n".join(
    f"        uniqExactIf(f_alert, fact = 'alert' AND f_state = 'open' AND f_severity = '{s}') AS open_{s}"
    for s in SEVERITY_ORDER
)
_OPEN_TOTAL: Final = " + ".join(f"open_{s}" for s in SEVERITY_ORDER)
_PRODUCTION_LIST: Final = ", ".join(f"'{e}'" for e in PRODUCTION)

_FAMILIES: Final = f"""
families AS
(
    SELECT
        if(r.root = '', f.digest, r.root) AS family,
        -- The name a registry gave it on push beats the one a runtime observation reported.
        argMaxIf(f_name, (f_name_rank, f_time), f_name != '') AS name,
        arraySort(groupUniqArray(f.digest)) AS digests,
        arraySort(groupUniqArrayIf(f_registry, f_registry != '')) AS registries,
        arraySort(groupUniqArrayIf(f_registry_host, f_registry_host != '')) AS registry_hosts,
        arraySlice(arrayDistinct(arrayFlatten(arrayMap(x -> x.2,
            arrayReverseSort(x -> x.1, groupArrayIf((f_time, f_tags), notEmpty(f_tags)))))), 1, {LIST_TAGS}) AS tags,
        arraySort(groupUniqArrayIf(f_repository, f_repository != '')) AS repositories,
        arraySort(groupUniqArrayIf(f_environment, fact = 'deployment')) AS environments,
        arraySort(groupUniqArrayIf((f_environment, f_cluster), fact = 'deployment')) AS locations,
        arraySort(groupUniqArrayArrayIf(f_risks, fact = 'deployment')) AS runtime_risks,
        arraySort(groupUniqArrayArrayIf(f_risks, fact = 'deployment' AND f_environment IN ({_PRODUCTION_LIST})))
            AS production_risks,
        toUInt8(countIf(fact = 'deployment') > 0) AS deployed,
{_OPEN_COUNTS},
        uniqExactIf(f_alert, fact = 'alert' AND f_state = 'fixed') AS fixed_alerts,
        uniqExactIf(f_alert, fact = 'alert' AND f_state = 'dismissed') AS dismissed_alerts,
        maxIfOrNull(f_cvss, fact = 'alert' AND f_state = 'open') AS max_open_cvss,
        maxIfOrNull(f_epss, fact = 'alert' AND f_state = 'open') AS max_open_epss,
        max(f_time) AS last_activity
    FROM facts AS f
    LEFT JOIN @digest_roots@ AS r ON r.digest = f.digest
    GROUP BY family
    SETTINGS join_use_nulls = 0
)"""  # noqa: S608 - fixed SQL text; every value is a bound parameter

_SUMMARY: Final = f"""
summary AS
(
    SELECT *, {_OPEN_TOTAL} AS open_alerts FROM families
)"""  # noqa: S608 - fixed SQL text; every value is a bound parameter

_SUMMARY_CTES: Final = f"WITH{_FACTS},{_FAMILIES},{_SUMMARY}"


# The summary's columns, in the snapshot table's order (migration 0006).
COLUMNS: Final = (
    "family", "name", "digests", "registries", "registry_hosts", "tags", "repositories", "environments",
    "locations", "runtime_risks", "production_risks", "deployed",
    *(f"open_{s}" for s in SEVERITY_ORDER),
    "fixed_alerts", "dismissed_alerts", "max_open_cvss", "max_open_epss", "last_activity", "open_alerts",
)


def computed_summary_ctes(as_of: datetime | None) -> str:
    """The summary CTEs over the current-state views, or the as-of views (which bind ``as_of``)."""
    sql = _SUMMARY_CTES
    for name in _RELATIONS:
        sql = sql.replace(f"@{name}@", relation(name, as_of))
    return sql


SNAPSHOT: Final = StampedSnapshot(
    table="artifact_summary_snapshot",
    columns=COLUMNS,
    marker="family",
    compute=f"{computed_summary_ctes(None)}\nSELECT {', '.join(COLUMNS)} FROM summary",
)


def summary_source(warehouse: Warehouse, as_of: datetime | None) -> tuple[str, dict[str, Any]]:
    """``WITH ... summary AS (...)`` and its parameters: the snapshot when it is current, else computed."""
    if as_of is None:
        generation = SNAPSHOT.current_generation(warehouse)
        if generation is not None:
            return f"WITH\nsummary AS\n(\n    {SNAPSHOT.rows_sql()}\n)", {"snapshot_generation": generation}
    return computed_summary_ctes(as_of), as_of_parameters(as_of)


def refresh_summary_snapshot(warehouse: Warehouse) -> bool:
    """Write a summary snapshot generation if any event arrived since the newest; True if it did."""
    return SNAPSHOT.refresh(warehouse)
