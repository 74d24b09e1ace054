"""The reads the pages need that history/ does not offer: the artifact list, the overview counts, the filter
facets and an artifact's lifecycle events.

Everything reads history's own views (migration 0003: the ``*_current`` views or their ``*_at(as_of)``
twins through :func:`history.client.relation`), the artifacts summary of :mod:`history.artifact_summary`
(its snapshot while current, else computed from those views), or the ``events`` table by its sort key, so
the pages show what ``/v1/*`` shows. Every value is a server-side parameter.

An artifact is a family (an image index and its platform manifests), identified by its root digest; see
:mod:`history.artifact_summary`. The list is one query over the summary: filter, sort and paging happen in
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

from history.alert_filter import AlertQuery
from history.artifact_summary import SEVERITY_ORDER, summary_source
from history.client import Warehouse
from web.artifact_filter import compile_artifact_filter

SortKey = Literal["alerts", "name", "updated", "deployed", "digest"]
SORT_KEYS: Final[tuple[SortKey, ...]] = ("alerts", "name", "updated", "deployed", "digest")
MAX_PER_PAGE: Final = 200
# An artifact re-pushed or re-observed endlessly must not make its timeline unbounded.
MAX_LIFECYCLE_EVENTS: Final = 5_000
# The ingest chart: one bar per minute over the last hour.
INGEST_MINUTES: Final = 60

# Reads up to ``until``: the as-of time, or this far future for "everything so far".
_FAR_FUTURE: Final = datetime(2299, 12, 31, tzinfo=UTC)
# ``find``: a substring of the name or a source repository, or part of a digest.
_FIND: Final = (
    "(empty({find:String}) OR positionCaseInsensitiveUTF8(name, {find:String}) > 0"
    " OR arrayExists(r -> positionCaseInsensitiveUTF8(r, {find:String}) > 0, repositories)"
    " OR arrayExists(d -> position(d, lowerUTF8({find:String})) > 0, digests))"
)
_ORDER_BY: Final[dict[SortKey, str]] = {
    "alerts": "open_critical {d}, open_high {d}, open_medium {d}, open_low {d}, open_alerts {d}",
    "name": "lowerUTF8(name) {d}",
    "updated": "last_activity {d}",
    "deployed": "deployed {d}, length(environments) {d}, length(runtime_risks) {d}",
    "digest": "family {d}",
}
_SUMMARY_COLUMNS: Final = (
    "family, name, digests, registries, registry_hosts, tags, repositories, environments, locations, "
    "runtime_risks, deployed, last_activity, "
    + ", ".join(f"open_{s}" for s in SEVERITY_ORDER)
    + ", open_alerts, fixed_alerts, dismissed_alerts"
)


# --- values ------------------------------------------------------------------------------------------
class SeverityCounts(NamedTuple):
    """Open alerts by severity; ``other`` holds negligible and unknown."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.critical + self.high + self.medium + self.low + self.other


class Location(NamedTuple):
    environment: str
    cluster: str


class ArtifactSummary(NamedTuple):
    """One row of the artifacts list."""

    digest: str  # the family root: the image index, or the digest itself
    name: str
    digests: tuple[str, ...]
    registries: tuple[str, ...]
    registry_hosts: tuple[str, ...]
    tags: tuple[str, ...]
    repositories: tuple[str, ...]
    environments: tuple[str, ...]
    locations: tuple[Location, ...]
    runtime_risks: tuple[str, ...]
    deployed: bool
    open_alerts: SeverityCounts
    fixed_alerts: int
    dismissed_alerts: int
    last_activity: datetime


class ArtifactListPage(NamedTuple):
    rows: tuple[ArtifactSummary, ...]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


class Facets(NamedTuple):
    """Values the filter chips offer: every environment and registry kind ever seen."""

    environments: tuple[str, ...]
    registries: tuple[str, ...]


class CountedLabel(NamedTuple):
    label: str
    value: int


class IngestSeries(NamedTuple):
    source: str
    per_minute: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.per_minute)


class IngestRate(NamedTuple):
    """Events per source per minute over the last hour, by ingest time."""

    start: datetime  # the first minute shown
    minutes: int
    series: tuple[IngestSeries, ...]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)


class OverviewCounts(NamedTuple):
    artifacts: int
    deployed_artifacts: int
    open_alerts: int
    events: int
    deployed_by_environment: tuple[CountedLabel, ...]
    open_alerts_by_exposure: tuple[CountedLabel, ...]


class LifecycleEvent(NamedTuple):
    """A storage, build or deployment event of an artifact, for its timeline."""

    kind: str
    time: datetime
    digest: str
    action: str  # storage action, build status, or deployment status
    status: str
    where: str  # registry repository, build repository, or the deployment cluster
    environment: str
    slot: str  # deployment slot key (logical/physical/cluster/name), '' for other kinds
    deployment_name: str = ""


class SlotTakeover(NamedTuple):
    """Another digest deployed into a slot this artifact held: its time ends the artifact's stay there."""

    slot: str
    time: datetime
    digest: str


# --- the artifacts list -----------------------------------------------------------------------------------
def _summary(row: dict[str, Any]) -> ArtifactSummary:
    return ArtifactSummary(
        digest=row["family"],
        name=row["name"],
        digests=tuple(row["digests"]),
        registries=tuple(row["registries"]),
        registry_hosts=tuple(row["registry_hosts"]),
        tags=tuple(row["tags"]),
        repositories=tuple(row["repositories"]),
        environments=tuple(row["environments"]),
        locations=tuple(Location(str(e), str(c)) for e, c in row["locations"]),
        runtime_risks=tuple(row["runtime_risks"]),
        deployed=bool(row["deployed"]),
        open_alerts=SeverityCounts(
            int(row["open_critical"]), int(row["open_high"]), int(row["open_medium"]), int(row["open_low"]),
            int(row["open_negligible"]) + int(row["open_unknown"]),
        ),
        fixed_alerts=int(row["fixed_alerts"]),
        dismissed_alerts=int(row["dismissed_alerts"]),
        last_activity=row["last_activity"],
    )


def artifact_list(
    warehouse: Warehouse,
    query: AlertQuery,
    *,
    find: str = "",
    sort: SortKey = "alerts",
    descending: bool = True,
    page: int = 1,
    per_page: int = 50,
) -> ArtifactListPage:
    """A page of artifacts matching ``query`` (see :mod:`web.artifact_filter`) and ``find`` (a substring of
    the name, a source repository or a digest), sorted by ``sort``; ties by digest."""
    per_page = max(1, min(per_page, MAX_PER_PAGE))
    page = max(1, page)
    condition = compile_artifact_filter(query.expr)
    ctes, parameters = summary_source(warehouse, query.as_of)
    parameters.update(condition.parameters)
    parameters.update(find=find.strip(), limit=per_page, offset=(page - 1) * per_page)
    direction = "DESC" if descending else "ASC"
    where = f"WHERE ({condition.where}) AND {_FIND}"
    rows = warehouse.rows(
        f"{ctes}\nSELECT {_SUMMARY_COLUMNS}, count() OVER () AS total_count FROM summary\n{where}\n"
        f"ORDER BY {_ORDER_BY[sort].format(d=direction)}, family\nLIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}",
        parameters,
    )
    total = int(rows[0]["total_count"]) if rows else 0
    if not rows and page > 1:
        # Past the last page: still tell the reader how many there are.
        total = int(warehouse.query(f"{ctes}\nSELECT count() FROM summary {where}", parameters).result_rows[0][0])
    return ArtifactListPage(tuple(_summary(r) for r in rows), total, page, per_page)


# --- the overview -----------------------------------------------------------------------------------------
EXPOSURE_BUCKETS: Final = (
    "internet-exposed in production",
    "internet-exposed elsewhere",
    "other runtime risk",
    "deployed, no runtime risk",
    "not deployed",
)


def overview_counts(warehouse: Warehouse, *, as_of: datetime | None = None) -> OverviewCounts:
    """Artifacts, deployed artifacts per environment, and open alerts by the exposure of the artifact they
    apply to (an alert counts once per artifact, as the list shows it), in one query."""
    bucket = (
        "multiIf(has(production_risks, 'internet-exposed'), '{}', has(runtime_risks, 'internet-exposed'), '{}', "
        "notEmpty(runtime_risks), '{}', deployed = 1, '{}', '{}')"
    ).format(*EXPOSURE_BUCKETS)
    ctes, parameters = summary_source(warehouse, as_of)
    sql = (
        f"{ctes}\n"
        "SELECT x.1 AS chart, x.2 AS label, sum(x.3) AS value FROM summary\n"
        "ARRAY JOIN arrayConcat(\n"
        "    [('artifacts', 'all', toUInt64(1)), ('artifacts', if(deployed = 1, 'deployed', 'not deployed'), 1),\n"
        f"     ('exposure', {bucket}, open_alerts)],\n"
        "    arrayMap(e -> ('environment', e, toUInt64(1)), environments)) AS x\n"
        "GROUP BY chart, label"
    )
    rows = warehouse.query(sql, parameters).result_rows
    charts: dict[str, dict[str, int]] = {}
    for chart, label, value in rows:
        charts.setdefault(str(chart), {})[str(label)] = int(value)
    events = int(warehouse.query("SELECT count() FROM events").result_rows[0][0])
    environments = charts.get("environment", {})
    exposure = charts.get("exposure", {})
    return OverviewCounts(
        artifacts=charts.get("artifacts", {}).get("all", 0),
        deployed_artifacts=charts.get("artifacts", {}).get("deployed", 0),
        open_alerts=sum(exposure.values()),
        events=events,
        deployed_by_environment=tuple(
            CountedLabel(e, n) for e, n in sorted(environments.items(), key=lambda item: (-item[1], item[0]))
        ),
        open_alerts_by_exposure=tuple(CountedLabel(b, exposure.get(b, 0)) for b in EXPOSURE_BUCKETS),
    )


def ingest_rate(warehouse: Warehouse, *, now: datetime | None = None) -> IngestRate:
    """Distinct events accepted per source per minute over the last hour (by ingest time)."""
    end = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=INGEST_MINUTES)
    rows = warehouse.query(
        "SELECT source, toUInt32(dateDiff('minute', {start:DateTime64(6, 'UTC')}, toStartOfMinute(ingest_time))) "
        "AS minute, uniqExact(event_id) FROM events "
        "WHERE ingest_time >= {start:DateTime64(6, 'UTC')} AND ingest_time < {end:DateTime64(6, 'UTC')} "
        "GROUP BY source, minute",
        {"start": start, "end": end},
    ).result_rows
    per_source: dict[str, list[int]] = {}
    for source, minute, count in rows:
        if 0 <= int(minute) < INGEST_MINUTES:
            per_source.setdefault(str(source), [0] * INGEST_MINUTES)[int(minute)] = int(count)
    series = sorted((IngestSeries(s, tuple(v)) for s, v in per_source.items()), key=lambda s: (-s.total, s.source))
    return IngestRate(start, INGEST_MINUTES, tuple(series))


def event_count(warehouse: Warehouse) -> int:
    """Rows in the history; the pages' live refresh polls it (a count is answered from part metadata)."""
    return int(warehouse.query("SELECT count() FROM events").result_rows[0][0])


def facets(warehouse: Warehouse) -> Facets:
    """Every logical environment and registry kind the history has seen, for the filter chips.

    Read from the current-state tables without FINAL: a distinct list needs no latest version.
    """
    rows = warehouse.query(
        "SELECT 'environment', lowerUTF8(CAST(logical_environment, 'String')) AS v FROM deployment_state "
        "WHERE digest != '' AND v != '' GROUP BY v "
        "UNION ALL SELECT 'registry', lowerUTF8(CAST(registry, 'String')) AS v FROM storage_state "
        "WHERE v != '' GROUP BY v"
    ).result_rows
    environments = sorted(str(v) for kind, v in rows if kind == "environment")
    registries = sorted(str(v) for kind, v in rows if kind == "registry")
    return Facets(tuple(environments), tuple(registries))


# --- an artifact's lifecycle ------------------------------------------------------------------------------
def _slot(row: dict[str, Any]) -> str:
    return "/".join(
        str(row[c]) for c in ("deployment_logical_environment", "deployment_physical_environment",
                              "deployment_cluster", "deployment_name")
    )


def lifecycle(
    warehouse: Warehouse, digests: Sequence[str], *, run_keys: Sequence[str] = (), as_of: datetime | None = None
) -> tuple[tuple[LifecycleEvent, ...], tuple[SlotTakeover, ...]]:
    """The storage, build and deployment events of these digests and the events of their workflow runs
    (``run:owner/name/<id>``), read by the events sort key; and the deployments of other digests into the
    same slots afterwards (slot takeover ends a stay)."""
    if not digests:
        return (), ()
    until = as_of or _FAR_FUTURE
    rows = warehouse.rows(
        "SELECT kind, event_time, digest, storage_action, storage_status, storage_registry, storage_repository, "
        "build_repository, build_status, build_conclusion, deployment_logical_environment, "
        "deployment_physical_environment, deployment_cluster, deployment_name, deployment_status FROM events "
        "WHERE key IN {keys:Array(String)} AND kind IN ('storage', 'build', 'deployment') "
        "AND event_time <= {until:DateTime64(6, 'UTC')} "
        "ORDER BY event_time, event_id LIMIT 1 BY event_id LIMIT {n:UInt32}",
        {"keys": [*digests, *run_keys], "until": until, "n": MAX_LIFECYCLE_EVENTS},
    )
    events: list[LifecycleEvent] = []
    for row in rows:
        kind = str(row["kind"])
        if kind == "storage":
            action, status = str(row["storage_action"]), str(row["storage_status"])
            where = f"{row['storage_registry']} {row['storage_repository']}".strip()
            environment = slot = ""
        elif kind == "build":
            # A workflow run reports its status; provenance (no status) is when the attestation arrived.
            action, status = str(row["build_status"] or "attested"), str(row["build_conclusion"])
            where, environment, slot = str(row["build_repository"]), "", ""
        else:
            action = status = str(row["deployment_status"])
            where = str(row["deployment_cluster"])
            environment = str(row["deployment_logical_environment"]).lower()
            slot = _slot(row)
        events.append(LifecycleEvent(kind, row["event_time"], str(row["digest"]), action, status, where,
                                     environment, slot, str(row["deployment_name"])))
    slots = sorted({e.slot for e in events if e.slot})
    if not slots:
        return tuple(events), ()
    since = min(e.time for e in events if e.slot)
    # Other digests are keyed by themselves, so this reads the deployment columns of the history; it is
    # narrowed to deployments after this artifact's first one.
    others = warehouse.rows(
        "SELECT deployment_logical_environment, deployment_physical_environment, deployment_cluster, "
        "deployment_name, event_time, digest FROM events "
        "WHERE kind = 'deployment' AND deployment_status = 'deployed' AND digest != '' "
        "AND digest NOT IN {ds:Array(String)} AND event_time >= {since:DateTime64(6, 'UTC')} "
        "AND event_time <= {until:DateTime64(6, 'UTC')} "
        "AND concat(deployment_logical_environment, '/', deployment_physical_environment, '/', "
        "deployment_cluster, '/', deployment_name) IN {slots:Array(String)} "
        "ORDER BY event_time LIMIT 1 BY event_id LIMIT {n:UInt32}",
        {"ds": list(digests), "since": since, "until": until, "slots": slots, "n": MAX_LIFECYCLE_EVENTS},
    )
    # Slot-wide decommissions (a workload deleted, reported without a digest) are keyed by the slot.
    cleared = warehouse.rows(
        "SELECT deployment_logical_environment, deployment_physical_environment, deployment_cluster, "
        "deployment_name, event_time FROM events "
        "WHERE key IN {keys:Array(String)} AND kind = 'deployment' AND digest = '' "
        "AND deployment_status = 'decommissioned' AND event_time <= {until:DateTime64(6, 'UTC')} "
        "ORDER BY event_time LIMIT 1 BY event_id LIMIT {n:UInt32}",
        {"keys": ["slot:" + s for s in slots], "until": until, "n": MAX_LIFECYCLE_EVENTS},
    )
    takeovers = [SlotTakeover(_slot(r), r["event_time"], str(r["digest"])) for r in others]
    takeovers += [SlotTakeover(_slot(r), r["event_time"], "") for r in cleared]
    return tuple(events), tuple(sorted(takeovers, key=lambda t: t.time))
