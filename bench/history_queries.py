"""Query latency over a large history: the linked view, the top alert filters and the web pages' reads.

Generates a synthetic history of ``--rows`` event rows straight into an embedded chDB warehouse, through the
same ``events`` table the sink writes (``INSERT INTO events SELECT ...`` from ClickHouse's ``numbers()``, so
every materialized view of the migrations fills as it does in production), then times each query with
warm-up: p50 / p95 / p99 over ``--runs`` calls.

The history is an organisation of applications, each with ``--releases-per-app`` (100) releases over a year. A
release is an artifact family (a multi-arch image index and 2-4 platform manifests) with 100 events:
index/platform links; pushes, tag observations, a promotion (move), a copy, end of life and deletion for old
releases; provenance for the index and a platform digest and the workflow run; deployments into the
application's six slots across environments, regions and clusters, with runtime risks asserted by a runtime
monitor and re-observed by Kubernetes, each release taking over the slots of the one before (some with a
decommission, some with a slot-wide delete); scanner findings with CVSS and EPSS on the platform digests (70%
of releases have them) and Dependabot alerts on the repository, open, re-reported, fixed or dismissed.

The generated data directory is cached under ``bench/results/tmp/`` keyed by rows, seed and generator
version, so a second run only measures. Each size runs in a child process: chDB holds one data path per
process.

    .venv/bin/python -m bench.history_queries [--rows 1000000,10000000] [--runs 50] [--warmup 5] [--seed 1]

Run it on an idle machine: on a 2-core machine another process's load shows up directly in these numbers
(the load average is printed before and after).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from bench._harness import RESULTS_DIR, latency_summary, machine, say, table, write_result
from history.alert_filter import parse
from history.alerts import search_alerts
from history.client import Warehouse
from history.linked_view import linked_view
from pipeline.history_writer import refresh_snapshots
from web.queries import artifact_list, facets, lifecycle, overview_counts

# Bump when the generated shape changes, so a cached directory of the old shape is not reused.
GENERATOR_VERSION: Final = 1
EVENTS_PER_FAMILY: Final = 100
# Releases of an application in the year: about two a week, as a service deployed by CI/CD. With 100 events a
# release, 10M rows are 1,000 applications (1,000 families deployed now); --releases-per-app 20 gives 5,000.
RELEASES_PER_APP: Final = 100
# Rows per INSERT ... SELECT: big enough that part counts stay low, small enough to show progress.
CHUNK_ROWS: Final = 100_000
CACHE_DIR: Final = RESULTS_DIR / "tmp"
DATABASE: Final = "linked_artifacts"
START: Final = datetime(2025, 11, 1, tzinfo=UTC)
AS_OF: Final = START + timedelta(days=200)
_LOCKS: list[Any] = []

# One row of `events` per number n: family f = n / 100, position j = n % 100 says what the row is.
# Only integers from argparse are formatted into this text.
_GENERATE: Final = """
INSERT INTO events (event_id, key, kind, source, digest, event_time, ingest_time, delivery_id, status_rank,
    storage_registry, storage_registry_url, storage_registry_host, storage_repository, storage_path,
    storage_status, storage_action, storage_tags, storage_vacated_repository, storage_vacated_path,
    build_repository, build_run_id, build_commit, build_status, build_conclusion, build_builder_id,
    build_attestation_sha256, deployment_logical_environment, deployment_physical_environment,
    deployment_cluster, deployment_name, deployment_status, deployment_runtime_risks,
    deployment_risks_asserted_by, link_index_digest, link_platform_digest, link_platform, alert_key,
    alert_scope, alert_repository, alert_vulnerability_id, alert_severity, alert_cvss, alert_epss, alert_state,
    alert_tool, alert_package, alert_title, body)
SELECT
    concat('bench-{seed}-', toString(n)) AS event_id,
    multiIf(kind = 'build' AND j >= 16, concat('run:', repo, '/', toString(run_id)),
            kind = 'alert' AND repo_alert, concat('repo:', repo),
            kind = 'deployment' AND slot_wide, concat('slot:', env, '/', physical, '/', cluster, '/', dname),
            kind = 'link', idx, subject) AS key,
    kind,
    multiIf(kind = 'link', 'artifactory', kind = 'storage', if(registry = 'github', 'github', 'artifactory'),
            kind = 'build', if(j >= 16, 'github', 'attestation'),
            kind = 'deployment', if(dobs = 1, 'cloudevents', 'kubernetes'),
            repo_alert, 'dependabot', tool) AS source,
    if(key LIKE 'sha256:%', key, '') AS digest,
    event_time,
    event_time + toIntervalSecond(1 + n % 30) AS ingest_time,
    event_id AS delivery_id,
    toUInt8(multiIf(kind = 'storage', indexOf(['active', 'eol', 'deleted'], status) - 1,
                    kind = 'deployment', indexOf(['deployed', 'decommissioned'], dstatus) - 1,
                    kind = 'alert', indexOf(['open', 'dismissed', 'fixed'], astate) - 1,
                    kind = 'build' AND j = 16, 1, kind = 'build' AND j = 17, 2, 0)) AS status_rank,
    if(kind = 'storage', registry, '') AS storage_registry,
    if(kind = 'storage', registry_url, '') AS storage_registry_url,
    if(kind = 'storage', if(registry = 'github', 'ghcr.io', 'acme.jfrog.io'), '') AS storage_registry_host,
    if(kind = 'storage', srepo, '') AS storage_repository,
    if(kind = 'storage', spath, '') AS storage_path,
    if(kind = 'storage', status, '') AS storage_status,
    if(kind = 'storage', action, '') AS storage_action,
    if(kind = 'storage', tags, []) AS storage_tags,
    if(kind = 'storage' AND sj = 10, 'docker-local', '') AS storage_vacated_repository,
    if(kind = 'storage' AND sj = 10, spath, '') AS storage_vacated_path,
    if(kind = 'build', repo, '') AS build_repository,
    if(kind = 'build', run_id, 0) AS build_run_id,
    if(kind = 'build', lower(hex(SHA1(concat('c', toString(f))))), '') AS build_commit,
    multiIf(kind != 'build', '', j = 16, 'in_progress', j = 17, 'completed', '') AS build_status,
    if(kind = 'build' AND j = 17, 'success', '') AS build_conclusion,
    if(kind = 'build' AND j < 16, 'https://github.com/actions/runner/github-hosted', '') AS build_builder_id,
    if(kind = 'build' AND j < 16, lower(hex(SHA256(concat('att', toString(n))))), '') AS build_attestation_sha256,
    if(kind = 'deployment', env, '') AS deployment_logical_environment,
    if(kind = 'deployment', physical, '') AS deployment_physical_environment,
    if(kind = 'deployment', cluster, '') AS deployment_cluster,
    if(kind = 'deployment', dname, '') AS deployment_name,
    if(kind = 'deployment', dstatus, '') AS deployment_status,
    if(kind = 'deployment' AND dobs = 1, risks, []) AS deployment_runtime_risks,
    if(kind = 'deployment' AND dobs = 1, 'defender-for-cloud', '') AS deployment_risks_asserted_by,
    if(kind = 'link', idx, '') AS link_index_digest,
    if(kind = 'link', plat, '') AS link_platform_digest,
    if(kind = 'link', ['linux/amd64', 'linux/arm64', 'linux/arm/v7', 'windows/amd64'][j + 1], '') AS link_platform,
    if(kind = 'alert', alert_key, '') AS alert_key,
    if(kind = 'alert', if(repo_alert, 'repository', 'digest'), '') AS alert_scope,
    if(kind = 'alert' AND repo_alert, repo, '') AS alert_repository,
    if(kind = 'alert', cve, '') AS alert_vulnerability_id,
    if(kind = 'alert', severity, '') AS alert_severity,
    if(kind = 'alert', cvss, NULL) AS alert_cvss,
    if(kind = 'alert', epss, NULL) AS alert_epss,
    if(kind = 'alert', astate, '') AS alert_state,
    if(kind = 'alert', if(repo_alert, 'dependabot', tool), '') AS alert_tool,
    if(kind = 'alert', package, '') AS alert_package,
    if(kind = 'alert', concat(cve, ' in ', package), '') AS alert_title,
    multiIf(
        kind = 'storage', toJSONString(map('name', concat('acme/', app_name), 'version', version,
            'artifact_url', concat(registry_url, srepo, '/', spath))),
        kind = 'build', toJSONString(map('workflow_name', 'release', 'workflow_path', '.github/workflows/release.yml',
            'ref', 'refs/heads/main', 'subject_name', concat('acme/', app_name),
            'run_url', concat('https://github.com/', repo, '/actions/runs/', toString(run_id)))),
        kind = 'deployment', toJSONString(map('name', concat('acme/', app_name), 'version', version,
            'namespace', app_name, 'workload', concat('Deployment/', dname), 'container', app_name,
            'image_ref', concat('acme.jfrog.io/docker-prod/', app_name, ':', version))),
        kind = 'link', toJSONString(map('index_digest', idx, 'platform_digest', plat)),
        toJSONString(map('fixed_version', concat(toString(1 + h % 5), '.', toString(h % 17)),
            'url', concat('https://nvd.nist.gov/vuln/detail/', cve)))) AS body
FROM
(
    SELECT
        number AS n,
        intDiv(n, {per_family}) AS f,
        n % {per_family} AS j,
        intDiv(f, {releases}) AS app,
        f % {releases} AS rel,
        concat('app-', toString(app)) AS app_name,
        concat('acme/', app_name) AS repo,
        concat('1.', toString(rel), '.0') AS version,
        2 + f % 3 AS nplat,
        cityHash64({seed}, f, 'alerted') % 10 < 7 AS alerted,
        1000000 + f AS run_id,
        toDateTime64('{start}', 6, 'UTC') + toIntervalSecond(rel * {release_seconds} + (app % 1000) * 60) AS t0,
        t0 + toIntervalSecond({release_seconds}) AS t_next,
        concat('sha256:', lower(hex(SHA256(concat('i{seed}:', toString(f)))))) AS idx,
        -- which platform manifest a row names
        multiIf(j < 4, j, j = 14, 0, j >= 18 AND j < 60, 0, (j - 60) % nplat) AS p,
        concat('sha256:', lower(hex(SHA256(concat('p{seed}:', toString(f), ':', toString(p)))))) AS plat,
        multiIf(j < 4, if(j < nplat, 'link', 'storage'), j < 14, 'storage', j < 18, 'build', j < 60, 'deployment',
                alerted, 'alert', 'storage') AS kind,
        -- storage: positions 4..13 are the lifecycle, every other storage row a tag observation on GHCR
        if(j >= 4 AND j < 14, j, 0) AS sj,
        if(sj IN (5, 13) OR sj = 0, 'github', 'artifactory') AS registry,
        if(registry = 'github', 'https://ghcr.io/', 'https://acme.jfrog.io/artifactory/') AS registry_url,
        multiIf(registry = 'github', repo, sj >= 4 AND sj < 10, 'docker-local', sj = 11, 'docker-release',
                'docker-prod') AS srepo,
        if(registry = 'github', '', concat(app_name, '/', version)) AS spath,
        sj = 12 AND rel < {eol_before} AS ends,
        sj = 13 AND rel < {deleted_before} AS deletes,
        multiIf(ends, 'eol', deletes, 'deleted', 'active') AS status,
        multiIf(sj = 4, 'pushed', sj = 5, 'published', sj = 10, 'moved', sj = 11, 'copied',
                ends, 'updated', deletes, 'deleted', 'observed') AS action,
        multiIf(sj = 4, [version], sj = 5, [version, 'latest'],
                sj >= 6 AND sj < 10, [concat('sha-', substring(idx, 8, 7)), 'latest'],
                sj = 11, [version], sj = 0, ['latest'], CAST([], 'Array(String)')) AS tags,
        -- deployments: positions 18..59 are 7 observations of each of the application's 6 slots
        (j - 18) % 6 AS slot,
        intDiv(j - 18, 6) AS dobs,
        ['dev', 'staging', 'prod', 'prod', 'prod', 'dev'][slot + 1] AS env,
        ['eastus', 'eastus', 'westeurope', 'eastus', 'westeurope', 'westus'][slot + 1] AS physical,
        concat('aks-', env, '-', physical, '-', toString(app % 7)) AS cluster,
        concat(app_name, '-', ['web', 'web', 'web', 'api', 'worker', 'batch'][slot + 1]) AS dname,
        dobs = 6 AND rel = {last_release} AND app % 10 = 0 AND slot = 5 AS slot_wide,
        dobs = 6 AND rel < {last_release} AND slot % 2 = 0 AS decommission,
        if(decommission OR slot_wide, 'decommissioned', 'deployed') AS dstatus,
        cityHash64({seed}, app, slot, 'risk') AS rh,
        arraySort(arrayFilter(x -> x != '', [
            if(rh % 10 < if(env = 'prod', 4, 1), 'internet-exposed', ''),
            if(intDiv(rh, 10) % 10 < 3, 'sensitive-data', ''),
            if(intDiv(rh, 100) % 10 < 2, 'critical-resource', ''),
            if(intDiv(rh, 1000) % 10 < 1, 'lateral-movement', '')])) AS risks,
        -- alerts: positions 60..99 are 4 reports of each of 10 findings
        (j - 60) % 10 AS finding,
        intDiv(j - 60, 10) AS aobs,
        finding = 9 AND rel % {repo_alert_every} = 0 AS repo_alert,
        cityHash64({seed}, app, finding, 'cve') AS h,
        concat('CVE-202', toString(3 + h % 3), '-', toString(1000 + intDiv(h, 7) % 3000)) AS cve,
        concat('pkg-', toString(intDiv(h, 13) % 500)) AS package,
        h % 100 AS sev,
        multiIf(sev < 6, 'critical', sev < 28, 'high', sev < 68, 'medium', sev < 88, 'low', sev < 95, 'negligible',
                'unknown') AS severity,
        multiIf(sev < 6, 9.0 + (h % 10) / 10, sev < 28, 7.0 + (h % 20) / 10, sev < 68, 4.0 + (h % 30) / 10,
                sev < 88, 0.1 + (h % 39) / 10, sev < 92, 0.0, NULL) AS cvss_raw,
        if(cvss_raw IS NULL OR cvss_raw = 0, NULL, round(cvss_raw, 1)) AS cvss,
        if(intDiv(h, 7) % 10 = 0, NULL, round(pow((intDiv(h, 100) % 1000) / 1000, 4), 5)) AS epss,
        cityHash64({seed}, f, finding, 'state') % 10 AS fate,
        multiIf(aobs = 2 AND rel < {last_release} AND fate < 6, 'fixed', aobs = 2 AND fate = 6, 'dismissed',
                'open') AS astate,
        if(finding % 2 = 0, 'grype', 'trivy') AS tool,
        if(finding < 2, idx, plat) AS alert_subject,
        concat(tool, ':', substring(alert_subject, 8, 12), ':', cve, ':', package) AS digest_alert_key,
        if(repo_alert, concat('dependabot:', repo, ':', toString(rel)), digest_alert_key) AS alert_key,
        multiIf(kind = 'link', idx, kind = 'storage', idx, kind = 'build', if(j = 14, plat, idx),
                kind = 'deployment', if(slot = 1, plat, idx), alert_subject) AS subject,
        multiIf(
            kind = 'link', t0 - toIntervalMinute(5 - j),
            kind = 'storage' AND sj = 0, t0 + toIntervalMinute(10 * j),
            kind = 'storage', t0 + toIntervalSecond(multiIf(sj = 4, 0, sj = 5, 300, sj < 10, (sj - 5) * 3600,
                sj = 10, 86400, sj = 11, 2 * 86400, sj = 12, 25 * 86400, 40 * 86400)),
            kind = 'build', t0 - toIntervalMinute([10, 11, 20, 9][j - 13]),
            kind = 'deployment', multiIf(
                dobs = 0, t0 + toIntervalHour(slot + 1),
                dobs = 1, t0 + toIntervalHour(slot + 1) + toIntervalMinute(10),
                dobs < 6, t0 + toIntervalHour(slot + 1) + toIntervalDay(3 * (dobs - 1)),
                decommission, t_next + toIntervalHour(slot + 1) + toIntervalMinute(30),
                slot_wide, t0 + toIntervalDay(14),
                t0 + toIntervalDay(13)),
            t0 + toIntervalSecond([86400, 3 * 86400, {release_seconds} + 86400, 10 * 86400][aobs + 1]
                + 600 * finding)) AS event_time
    FROM numbers({first}, {count})
)
SETTINGS max_threads = 2
"""


def family_digests(seed: int, family: int) -> tuple[str, list[str]]:
    """The index digest and platform digests of a family, as the generator SQL computes them."""
    index = "sha256:" + hashlib.sha256(f"i{seed}:{family}".encode()).hexdigest()
    platforms = ["sha256:" + hashlib.sha256(f"p{seed}:{family}:{p}".encode()).hexdigest()
                 for p in range(2 + family % 3)]
    return index, platforms


def _generate(warehouse: Warehouse, *, rows: int, seed: int, releases: int) -> None:
    started = time.monotonic()
    for first in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - first)
        warehouse.command(_GENERATE.format(
            seed=seed, per_family=EVENTS_PER_FAMILY, releases=releases, last_release=releases - 1,
            start=START.strftime("%Y-%m-%d %H:%M:%S"), release_seconds=365 * 86_400 // releases, first=first,
            count=count, eol_before=releases * 3 // 4, deleted_before=releases // 2,
            repo_alert_every=max(1, releases // 5),
        ))
        done = first + count
        elapsed = time.monotonic() - started
        say(f"  generated {done:,} / {rows:,} rows ({done / elapsed:,.0f} rows/s, "
            f"eta {(rows - done) / (done / elapsed):.0f}s)")
    _settle(warehouse)


def _settle(warehouse: Warehouse, *, timeout: float = 600.0) -> None:
    # Measure a settled warehouse, as production is between bursts: wait for background merges.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = int(warehouse.query("SELECT count() FROM system.merges").result_rows[0][0])
        if running == 0:
            return
        time.sleep(1.0)


def open_history(rows: int, seed: int, releases: int = RELEASES_PER_APP) -> tuple[Warehouse, Path]:
    """The cached warehouse for (rows, seed, releases per application), generated first when absent.
    Migrations newer than the cache are applied on open, as at a production start-up (backfills included)."""
    suffix = "" if releases == 20 else f"-r{releases}"  # caches of the first shape (20) keep their name
    directory = CACHE_DIR / f"history-v{GENERATOR_VERSION}-{rows}-s{seed}{suffix}"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Held until the process ends: a second run must not take an unfinished directory for an abandoned one.
    lock = (CACHE_DIR / f"{directory.name}.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit(f"{directory} is in use by another run of this benchmark") from None
    _LOCKS.append(lock)
    marker = directory / "complete"
    if directory.exists() and not marker.exists():
        say(f"removing an incomplete cache {directory}")
        shutil.rmtree(directory)
    fresh = not marker.exists()
    directory.mkdir(parents=True, exist_ok=True)
    warehouse = Warehouse.connect(f"chdb://{directory}/clickhouse", database=DATABASE)
    applied = warehouse.apply_migrations()
    if fresh:
        say(f"generating {rows:,} rows into {directory}")
        _generate(warehouse, rows=rows, seed=seed, releases=releases)
        marker.write_text(json.dumps({"rows": rows, "seed": seed, "releases": releases,
                                      "generator": GENERATOR_VERSION}) + "\n")
    else:
        say(f"using cached history {directory}" + (f" (applied migrations {applied})" if applied else ""))
    # A fresh history too: its parts are still merging, and a read touches every part.
    started = time.monotonic()
    _settle(warehouse)
    say(f"background merges settled in {time.monotonic() - started:.1f}s")
    # As the sink does after each batch: a no-op for a snapshot already current.
    for name, seconds in refresh_snapshots(warehouse).items():
        say(f"refreshed the {name} snapshot in {seconds:.2f}s")
    return warehouse, directory


def _counts(warehouse: Warehouse) -> dict[str, int]:
    rows = warehouse.query(
        "SELECT name, total_rows FROM system.tables WHERE database = currentDatabase() "
        "AND engine LIKE '%MergeTree' AND name != 'schema_migrations' ORDER BY name"
    ).result_rows
    counts = {str(name): int(total or 0) for name, total in rows}
    by_kind = warehouse.query("SELECT kind, count() FROM events GROUP BY kind ORDER BY kind").result_rows
    counts.update({f"events[{kind}]": int(n) for kind, n in by_kind})
    return counts


# A query slower than this per call gets the runs that fit in SLOW_BUDGET_S (at least MIN_SLOW_RUNS), so
# one slow page read cannot hold the shared machine for many minutes; the table shows the count.
SLOW_CALL_S: Final = 1.0
SLOW_BUDGET_S: Final = 60.0
MIN_SLOW_RUNS: Final = 10


def _timed(fn: Callable[[], object], *, runs: int, warmup: int) -> dict[str, float]:
    started = time.perf_counter()
    for _ in range(warmup):
        fn()
    per_call = (time.perf_counter() - started) / max(1, warmup)
    if per_call > SLOW_CALL_S:
        runs = min(runs, max(MIN_SLOW_RUNS, int(SLOW_BUDGET_S / per_call)))
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return latency_summary(seconds)


def _cases(warehouse: Warehouse, *, rows: int, seed: int, releases: int) -> list[tuple[str, Callable[[], object]]]:
    families = rows // EVENTS_PER_FAMILY
    rng = random.Random(seed)
    # A mix: the latest release of an application (deployed now, with alerts) and any release.
    picks = [rng.randrange(families) for _ in range(64)]
    picks += [min(families - 1, (rng.randrange(families) // releases) * releases + releases - 1) for _ in range(64)]
    indexes = [family_digests(seed, f)[0] for f in picks]
    platforms = [rng.choice(family_digests(seed, f)[1]) for f in picks]
    cycle = {"index": 0, "platform": 0}

    def view(kind: str, digests: list[str], as_of: datetime | None = None) -> Callable[[], object]:
        def run() -> object:
            digest = digests[cycle[kind] % len(digests)]
            cycle[kind] += 1
            return linked_view(warehouse, digest, history_limit=50, as_of=as_of)
        return run

    def page(digests: list[str]) -> Callable[[], object]:
        # The artifact page: the linked view, then the lifecycle of its family for the timeline.
        def run() -> object:
            digest = digests[cycle["index"] % len(digests)]
            cycle["index"] += 1
            found = linked_view(warehouse, digest, history_limit=50)
            assert found is not None  # noqa: S101 - every generated digest is known
            runs = sorted({f"run:{b['repository']}/{b['workflow_run_id']}" for b in found["builds"]
                           if b["repository"] and b["workflow_run_id"]})
            return lifecycle(warehouse, found["family"]["digests"], run_keys=runs)
        return run

    as_of = AS_OF.isoformat()
    return [
        ("linked view (index digest)", view("index", indexes)),
        ("linked view (platform digest)", view("platform", platforms)),
        ("linked view as-of (index)", view("index", indexes, AS_OF)),
        ("alerts: has:deployment runtime-risk:internet-exposed",
         lambda: search_alerts(warehouse, "has:deployment runtime-risk:internet-exposed", limit=50)),
        ("alerts: severity:critical is:open", lambda: search_alerts(warehouse, "severity:critical is:open", limit=50)),
        ("alerts: environment:prod cvss:>7", lambda: search_alerts(warehouse, "environment:prod cvss:>7", limit=50)),
        ("alerts: has:deployment as-of:", lambda: search_alerts(warehouse, f"has:deployment as-of:{as_of}", limit=50)),
        ("alerts: (none) first page", lambda: search_alerts(warehouse, "", limit=50)),
        ("page: artifact (view + lifecycle)", page(indexes)),
        ("page: artifact_list", lambda: artifact_list(warehouse, parse(""))),
        ("page: artifact_list 2 chips",
         lambda: artifact_list(warehouse, parse("has:deployment runtime-risk:internet-exposed"))),
        ("page: overview_counts", lambda: overview_counts(warehouse)),
        ("page: facets", lambda: facets(warehouse)),
    ]


def run_one(rows: int, *, seed: int, releases: int, runs: int, warmup: int, only: str) -> dict[str, Any]:
    warehouse, directory = open_history(rows, seed, releases)
    counts = _counts(warehouse)
    say(f"rows: events {counts.get('events', 0):,}; " + ", ".join(
        f"{k} {v:,}" for k, v in counts.items() if k != "events"))
    results: dict[str, Any] = {}
    for label, fn in _cases(warehouse, rows=rows, seed=seed, releases=releases):
        if only and only not in label:
            continue
        load = [round(x, 2) for x in os.getloadavg()]
        results[label] = {**_timed(fn, runs=runs, warmup=warmup), "load_average": load}
        r = results[label]
        say(f"  {label}: p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms (load {load})")
    warehouse.close()
    return {"rows": rows, "seed": seed, "releases_per_app": releases, "directory": str(directory), "counts": counts,
            "queries": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="history sizes in event rows, comma-separated")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per query")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls per query first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--releases-per-app", type=int, default=RELEASES_PER_APP,
                        help="releases of each application in the year (fewer: more applications deployed now)")
    parser.add_argument("--only", default="", help="measure only the queries whose label contains this text")
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s.replace("_", "")) for s in args.rows.split(",") if s.strip()]
    if args.releases_per_app < 2:
        parser.error("--releases-per-app: at least 2")
    if any(s < EVENTS_PER_FAMILY * args.releases_per_app for s in sizes):
        parser.error(f"--rows: each size must be at least {EVENTS_PER_FAMILY * args.releases_per_app}")

    if args.child_output:
        # One size per process: chDB holds one data path per process.
        result = run_one(sizes[0], seed=args.seed, releases=args.releases_per_app, runs=args.runs, warmup=args.warmup,
                         only=args.only)
        Path(args.child_output).write_text(json.dumps(result, default=str))
        return

    info = machine()
    say(f"machine: {info['cpu_model']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['memory_gib']} GiB RAM, load avg {info['load_average_at_start']}; {info['python']}; "
        f"chdb {info['packages'].get('chdb')}, clickhouse-connect {info['packages'].get('clickhouse-connect')}")
    results = []
    for size in sizes:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [sys.executable, "-m", "bench.history_queries", "--rows", str(size), "--runs", str(args.runs),
                       "--warmup", str(args.warmup), "--seed", str(args.seed), "--only", args.only,
                       "--releases-per-app", str(args.releases_per_app),
                       "--child-output", out.name]
            say(f"== {size:,} rows")
            subprocess.run(command, check=True)  # noqa: S603 - our own module with validated arguments
            results.append(json.loads(Path(out.name).read_text()))

    labels = list(dict.fromkeys(label for r in results for label in r["queries"]))
    if not labels:
        return
    headers = ["query"] + [f"{r['rows'] / 1e6:g}M {p}" for r in results for p in ("p50", "p95", "p99", "runs")]
    body = [[label] + [r["queries"].get(label, {}).get(f"{p}_ms" if p != "runs" else "count", float("nan"))
                       for r in results for p in ("p50", "p95", "p99", "runs")] for label in labels]
    print()
    print(f"milliseconds per call, {args.runs} calls after {args.warmup} warm-up "
          f"(aim: p95 < 200 ms at 10M for the linked view and has:deployment runtime-risk:internet-exposed)")
    print(table(headers, body))
    print(f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    path = write_result("history_queries", {"machine": info, "runs": args.runs, "warmup": args.warmup,
                                            "sizes": results})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
