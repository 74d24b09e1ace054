"""The deployed-now snapshot: used only while its change stamp is current, so it never changes an answer."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import pytest

from history.alert_filter import compile_filter
from history.alerts import rank, search_alerts
from history.client import Warehouse
from history.deployed import compute_deployed_now, deployed_now, refresh_deployed_now
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent
from pipeline.history_writer import WarehouseWriter

from .builders import Events, Triage, digest

QUERIES = ("has:deployment runtime-risk:internet-exposed", "environment:prod cvss:>7", "has:deployment -is:open")


def _load(warehouse: Warehouse, events: list[ArtifactEvent]) -> None:
    insert_events(warehouse, events, dedup_token=f"t:{uuid.uuid4()}")


def _snapshots(warehouse: Warehouse) -> int:
    return int(warehouse.query("SELECT count() FROM deployed_now_snapshot").result_rows[0][0])


def test_refresh_writes_a_snapshot_only_when_deployments_changed(warehouse: Warehouse) -> None:
    _load(warehouse, Triage().events)
    assert refresh_deployed_now(warehouse)
    assert not refresh_deployed_now(warehouse)
    assert _snapshots(warehouse) == 1
    # An alert changes nothing deployed: the stamp and the snapshot stay.
    _load(warehouse, [Events().alert(digest("index"), minute=90, vuln="CVE-2025-9", severity="low")])
    assert not refresh_deployed_now(warehouse)
    assert sorted(deployed_now(warehouse)) == sorted(compute_deployed_now(warehouse))


def test_a_stale_snapshot_is_not_used(warehouse: Warehouse) -> None:
    history = Triage()
    _load(warehouse, history.events)
    refresh_deployed_now(warehouse)
    before = {q: search_alerts(warehouse, q, limit=100) for q in QUERIES}
    # A new deployment of x into another slot: the snapshot no longer holds, the answer must include it.
    late = Events().deploy(
        history.x,
        minute=95,
        cluster="aks-prod-9",
        name="x-app",
        risks=["internet-exposed"],
        asserted_by="defender-for-cloud",
    )
    _load(warehouse, [late.model_copy(update={"event_id": "late-x", "delivery_id": "late-x"})])
    now = sorted(compute_deployed_now(warehouse))
    assert history.x in {d.digest for d in now}
    assert sorted(deployed_now(warehouse)) == now
    stale = {q: search_alerts(warehouse, q, limit=100) for q in QUERIES}
    assert refresh_deployed_now(warehouse)
    assert sorted(deployed_now(warehouse)) == now
    assert {q: search_alerts(warehouse, q, limit=100) for q in QUERIES} == stale
    assert stale[QUERIES[0]] != before[QUERIES[0]]


def test_answers_are_the_same_with_and_without_a_snapshot(warehouse: Warehouse) -> None:
    _load(warehouse, Triage().events)
    without = {q: search_alerts(warehouse, q, limit=100) for q in QUERIES}
    refresh_deployed_now(warehouse)
    assert {q: search_alerts(warehouse, q, limit=100) for q in QUERIES} == without


@pytest.mark.parametrize(
    "query",
    [
        "has:deployment",
        "has:deployment runtime-risk:internet-exposed",
        "has:deployment (runtime-risk:sensitive-data OR severity:critical)",
        "environment:prod -is:open",
        "environment:staging as-of:2025-03-03T09:30:00Z",
        "has:deployment as-of:2025-03-03T10:00:00Z",
        "has:deployment repo:acme/payments-api artifact-registry:jfrog-artifactory",
    ],
)
def test_the_composed_deployed_scope_ranks_as_the_sql_context_does(warehouse: Warehouse, query: str) -> None:
    _load(warehouse, Triage().events)
    compiled = compile_filter(query)
    assert compiled.requires_deployment
    composed = rank(warehouse, compiled, limit=100)
    # Without the parsed predicate, rank takes the SQL path (context_sql, deployed scope).
    assert composed == rank(warehouse, replace(compiled, expr=None), limit=100)
    assert composed[1][1:] == rank(warehouse, compiled, limit=99, offset=1)[1]


def test_the_sink_writer_refreshes_the_snapshot_after_a_batch_at_most_every_few_seconds(
    warehouse: Warehouse,
) -> None:
    writer = WarehouseWriter(warehouse, refresh_every=3600)
    writer.write(Triage().events, dedup_token=f"t:{uuid.uuid4()}")
    assert writer.refreshes["deployed_now"] == 1 and _snapshots(warehouse) == 1
    rows, digest_hash = warehouse.query("SELECT sum(rows), sum(hash) FROM deployment_change_state").result_rows[0]
    current = warehouse.query(
        "SELECT count() FROM deployed_now_snapshot WHERE change_rows = {r:UInt64} AND change_hash = {h:UInt64}",
        {"r": int(rows), "h": int(digest_hash)},
    ).result_rows[0][0]
    assert current == 1  # the snapshot the search will use is the current one
    # Within the interval a new deployment is inserted but not snapshotted; the search stays right.
    later = Events().deploy(digest("late"), minute=120, cluster="late-1")
    writer.write([later], dedup_token=f"t:{uuid.uuid4()}")
    assert writer.refreshes["deployed_now"] == 1
    assert sorted(deployed_now(warehouse)) == sorted(compute_deployed_now(warehouse))


def test_a_deferred_refresh_happens_when_the_sink_finds_nothing_to_write(warehouse: Warehouse) -> None:
    # No cost share: the interval alone decides (the other test covers the cost-based spacing).
    writer = WarehouseWriter(warehouse, refresh_every=1.0, cost_share=0.0)
    writer.write(Triage().events, dedup_token=f"t:{uuid.uuid4()}")
    writer.write([Events().deploy(digest("late"), minute=120, cluster="late-1")], dedup_token=f"t:{uuid.uuid4()}")
    assert writer.refreshes["deployed_now"] == 1  # the second write fell within the interval
    writer.idle()
    assert writer.refreshes["deployed_now"] == 1  # still within it
    time.sleep(1.05)
    writer.idle()
    assert writer.refreshes["deployed_now"] == 2
    writer.idle()
    assert writer.refreshes["deployed_now"] == 2  # nothing written since: nothing to refresh
    rows, digest_hash = warehouse.query("SELECT sum(rows), sum(hash) FROM deployment_change_state").result_rows[0]
    current = warehouse.query(
        "SELECT count() FROM deployed_now_snapshot WHERE change_rows = {r:UInt64} AND change_hash = {h:UInt64}",
        {"r": int(rows), "h": int(digest_hash)},
    ).result_rows[0][0]
    assert current == 1
