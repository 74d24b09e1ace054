"""Server time of the web pages on the demo organisation: p50 and p95 per page against the 300 ms budget.

Fills an embedded chDB warehouse (a throw-away directory) with the demo organisation made by the
connectors' own parsers (bench/_demo_events.py, ~10,000 events by default), mounts the pages on the query
API exactly as the worker does, and requests each page in-process. For each page it reports:

- server time: the ``Server-Timing: total`` the page itself measured (request parsed to response built),
  split into ``db`` (ClickHouse reads, in the worker thread) and ``render`` (Jinja);
- raw: the same reads called directly (history's and web.queries' functions, no HTTP, no template), the
  floor the page cannot beat;
- whether p95 is within the budget.

After loading, it refreshes the snapshots as the ClickHouse sink does after its inserts (deployed-now, the
artifacts summary and the alert context: migrations 0004, 0006 and 0007), so the pages are measured as a
quiet system serves them. ``--stale`` skips that: every page computes from the views, as while events keep arriving.

    .venv/bin/python -m bench.web_pages [--events 10000] [--samples 30] [--warmup 3] [--stale]

Run it on an idle machine: chDB plans and runs each query on the same cores as everything else, and on a
2-core machine another process's load shows up directly in these numbers (the load average is printed).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench._demo_events import demo_events, load
from bench._harness import latency_summary, machine, say, table, write_result
from history.alert_filter import parse
from history.alerts import MAX_EXPORT, search_alerts
from history.client import Warehouse
from history.linked_view import linked_view
from linked_artifacts import gc_tuning
from linked_artifacts.settings import Settings
from pipeline.history_writer import refresh_snapshots
from pipeline.query_api import create_query_api
from web import mount_web
from web.queries import artifact_list, facets, ingest_rate, overview_counts

BUDGET_MS = 300.0
TOKEN = "bench-query-token"  # noqa: S105 - a throw-away token for an in-process benchmark
_TIMING = re.compile(r"(\w+);dur=([0-9.]+)")


def _timings(header: str) -> dict[str, float]:
    return {name: float(ms) for name, ms in _TIMING.findall(header)}


def _pages(warehouse: Warehouse) -> list[tuple[str, str, Callable[[], object]]]:
    """(label, path, the same reads without HTTP or template) for each page measured."""
    deployed = artifact_list(warehouse, parse("has:deployment runtime-risk:internet-exposed")).rows[0]
    platform = deployed.digests[-1]
    as_of = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    as_of_field = as_of.strftime("%Y-%m-%dT%H:%M:%S")

    def raw_list(query: str, **kwargs: Any) -> Callable[[], object]:
        return lambda: (facets(warehouse), artifact_list(warehouse, parse(query), **kwargs))

    return [
        ("artifacts", "/artifacts", raw_list("")),
        ("artifacts, 2 chips", "/artifacts?chip=has%3Adeployment&chip=runtime-risk%3Ainternet-exposed",
         raw_list("has:deployment runtime-risk:internet-exposed")),
        ("artifacts, name sort p3", "/artifacts?sort=name&dir=asc&page=3",
         raw_list("", sort="name", descending=False, page=3)),
        ("artifacts, find", "/artifacts?find=payments", raw_list("", find="payments")),
        ("artifacts, as-of", f"/artifacts?as_of={as_of_field}", raw_list(f"as-of:{as_of.isoformat()}")),
        ("artifact (index)", f"/artifacts/{deployed.digest}",
         lambda: linked_view(warehouse, deployed.digest, history_limit=50)),
        ("artifact (platform)", f"/artifacts/{platform}", lambda: linked_view(warehouse, platform, history_limit=50)),
        ("triage", "/triage", lambda: (facets(warehouse), search_alerts(warehouse, "", limit=50))),
        ("triage, 2 chips", "/triage?chip=runtime-risk%3Ainternet-exposed&chip=environment%3Aprod",
         lambda: search_alerts(warehouse, "runtime-risk:internet-exposed environment:prod", limit=50)),
        ("triage, as-of", f"/triage?chip=has%3Adeployment&as_of={as_of_field}",
         lambda: search_alerts(warehouse, f"has:deployment as-of:{as_of.isoformat()}", limit=50)),
        ("overview", "/overview", lambda: (overview_counts(warehouse), ingest_rate(warehouse))),
        ("live refresh (artifacts)", "/web/live/artifacts", raw_list("")),
        ("csv export (all alerts)", "/triage.csv",
         lambda: search_alerts(warehouse, "", limit=MAX_EXPORT, max_limit=MAX_EXPORT)),
    ]


def _check(status: int, path: str) -> None:
    if status != 200:
        raise SystemExit(f"{path} answered {status}: the benchmark measures working pages only")


def _measure(client: TestClient, path: str, raw: Callable[[], object], *, samples: int, warmup: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for _ in range(warmup):
        _check(client.get(path, headers=headers).status_code, path)
    server: list[float] = []
    db: list[float] = []
    render: list[float] = []
    wall: list[float] = []
    raw_seconds: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        wall.append(time.perf_counter() - started)
        _check(response.status_code, path)
        timing = _timings(response.headers.get("server-timing", ""))
        server.append(timing.get("total", float("nan")) / 1000)
        db.append(timing.get("db", 0.0) / 1000)
        render.append(timing.get("render", 0.0) / 1000)
        started = time.perf_counter()
        raw()
        raw_seconds.append(time.perf_counter() - started)
    return {
        "path": path,
        "server": latency_summary(server),
        "db": latency_summary(db),
        "render": latency_summary(render),
        "wall": latency_summary(wall),
        "raw": latency_summary(raw_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="size of the demo organisation (events)")
    parser.add_argument("--samples", type=int, default=30, help="requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="requests per page before measuring")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stale", action="store_true",
                        help="skip the snapshot refresh: measure the pages as while events keep arriving")
    args = parser.parse_args()

    info = machine()
    say(f"machine: {info['cpu_model']}, {info['cores']} cores ({info['cores_usable']} usable), "
        f"{info['memory_gib']} GiB RAM, load avg {info['load_average_at_start']}; {info['python']}; "
        f"chdb {info['packages'].get('chdb')}, clickhouse-connect {info['packages'].get('clickhouse-connect')}")
    with tempfile.TemporaryDirectory(prefix="la-bench-web-") as scratch:
        started = time.monotonic()
        demo = demo_events(seed=args.seed, now=datetime.now(UTC).replace(microsecond=0), target_events=args.events)
        warehouse = Warehouse.connect(f"chdb://{scratch}/clickhouse", database="linked_artifacts")
        warehouse.apply_migrations()
        load(warehouse, demo.events, label="bench")
        say(f"loaded {len(demo.events):,} demo events ({len(demo.org.repositories)} repositories) in "
            f"{time.monotonic() - started:.1f}s")
        if not args.stale:
            took = refresh_snapshots(warehouse)
            say("refreshed the snapshots as the sink does: "
                + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in took.items()))
        settings = Settings(data_dir=Path(scratch), query_token=TOKEN)
        api = create_query_api(settings, warehouse=warehouse)
        local = threading.local()

        def session() -> Warehouse:
            if not hasattr(local, "warehouse"):
                local.warehouse = warehouse.session()
            found: Warehouse = local.warehouse
            return found

        gc_tuning.tune_for_service()  # the pages are served from the worker process, which runs tuned
        # Nothing listens there: the overview measures the "connectors not reachable" path, a refused connect.
        mount_web(api, settings, warehouse_session=session, connectors_metrics_url="http://127.0.0.1:9/metrics")
        # As a context manager: one event loop and one thread pool for every request, as a running worker
        # has. Without it each request gets a new loop and new threads, and so opens a new ClickHouse
        # session (~20 ms) that a running worker never pays.
        with TestClient(api) as client:
            results: dict[str, Any] = {}
            for label, page_path, raw in _pages(warehouse):
                results[label] = _measure(client, page_path, raw, samples=args.samples, warmup=args.warmup)
                say(f"{label}: p50 {results[label]['server']['p50_ms']:.0f} ms")
        warehouse.close()

    rows = [
        (label, r["server"]["p50_ms"], r["server"]["p95_ms"], r["server"]["max_ms"], r["db"]["p50_ms"],
         r["render"]["p50_ms"], r["raw"]["p50_ms"], "yes" if r["server"]["p95_ms"] <= BUDGET_MS else "NO")
        for label, r in results.items()
    ]
    print()
    print(f"server time per page, {args.samples} requests each, {len(demo.events):,} events, "
          f"{'snapshots stale (computed from the views)' if args.stale else 'snapshots current'} "
          f"(budget {BUDGET_MS:.0f} ms at p95; csv export is a download, listed for scale)")
    print(table(["page", "p50 ms", "p95 ms", "max ms", "db p50", "render p50", "raw p50", "p95 ok"], rows))
    print(f"load average at the end: {[round(x, 2) for x in os.getloadavg()]}")
    path = write_result("web_pages", {"machine": info, "events": len(demo.events), "samples": args.samples,
                                      "snapshots": "stale" if args.stale else "current",
                                      "budget_ms": BUDGET_MS, "pages": results})
    print(f"result: {path}")


if __name__ == "__main__":
    main()
