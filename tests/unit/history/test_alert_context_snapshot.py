"""The alert context snapshot: a search reads it only while its change stamp is current, and it answers every
filter exactly as the context query (or the composed deployed scope) does: same results, ranks, scores,
reasons and totals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings

from bench._demo_events import demo_events
from history.alert_filter import AlertQuery, render
from history.alerts import SNAPSHOT, AlertSearch, refresh_alert_context_snapshot, search_alerts
from history.client import Warehouse
from history.rows import insert_events
from history.snapshots import StampedSnapshot
from linked_artifacts.events import ArtifactEvent

from .builders import Events, Triage
from .conftest import empty_tables
from .strategies import QUERIES

SEARCHES = (
    ("", 0), ("", 3), ("has:deployment runtime-risk:internet-exposed", 0), ("severity:critical is:open", 0),
    ("environment:prod cvss:>7", 0), ("-is:open", 0), ("repo:acme/payments-api OR epss:>0.1", 0),
)


def _load(warehouse: Warehouse, events: list[ArtifactEvent]) -> None:
    insert_events(warehouse, events, dedup_token=f"t:{uuid.uuid4()}")


@contextmanager
def _computed() -> Iterator[None]:
    """Searches inside ignore any snapshot: the context query or the composed deployed scope answers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StampedSnapshot, "current_generation", lambda self, warehouse: None)
        yield


def _search(warehouse: Warehouse, query: str, offset: int = 0) -> AlertSearch:
    return search_alerts(warehouse, query, limit=7 if offset else 100, offset=offset)


@pytest.fixture(scope="module")
def snapshotted(shared_database: Warehouse) -> Iterator[Warehouse]:
    empty_tables(shared_database)
    _load(shared_database, Triage().events)
    assert refresh_alert_context_snapshot(shared_database)
    yield shared_database
    empty_tables(shared_database)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=QUERIES)
def test_every_filter_answers_from_the_snapshot_as_computed(snapshotted: Warehouse, query: AlertQuery) -> None:
    text = render(replace(query, as_of=None))
    assert SNAPSHOT.current_generation(snapshotted) is not None
    from_snapshot = search_alerts(snapshotted, text, limit=1000)
    with _computed():
        assert search_alerts(snapshotted, text, limit=1000) == from_snapshot, text


def test_searches_on_a_demo_organisation_answer_the_same(warehouse: Warehouse) -> None:
    _load(warehouse, list(demo_events(seed=5, now=datetime.now(UTC).replace(microsecond=0),
                                      target_events=2_000).events))
    computed = [_search(warehouse, q, offset) for q, offset in SEARCHES]
    assert refresh_alert_context_snapshot(warehouse)
    assert [_search(warehouse, q, offset) for q, offset in SEARCHES] == computed
    assert computed[0].total_count > 20 and computed[2].total_count > 0  # the answers compared are not empty


def test_a_stale_snapshot_is_not_used(warehouse: Warehouse) -> None:
    history = Triage()
    _load(warehouse, history.events)
    refresh_alert_context_snapshot(warehouse)
    before = {a.vulnerability_id for a in _search(warehouse, "severity:critical").results}
    late = Events().alert(history.x, minute=95, vuln="CVE-2025-7777", severity="critical", cvss=9.1)
    _load(warehouse, [late])
    assert SNAPSHOT.current_generation(warehouse) is None
    after = {a.vulnerability_id for a in _search(warehouse, "severity:critical").results}
    assert after == before | {"CVE-2025-7777"}
    assert refresh_alert_context_snapshot(warehouse)
    assert {a.vulnerability_id for a in _search(warehouse, "severity:critical").results} == after


def test_as_of_searches_never_read_the_snapshot(warehouse: Warehouse) -> None:
    history = Triage()
    _load(warehouse, history.events)
    refresh_alert_context_snapshot(warehouse)
    # Emptied, the snapshot would answer nothing: an as-of search still finds the alerts of its time.
    warehouse.command("TRUNCATE TABLE alert_context_snapshot")
    refresh_alert_context_snapshot(warehouse)
    warehouse.command("ALTER TABLE alert_context_snapshot DELETE WHERE subject != '' SETTINGS mutations_sync = 1")
    assert SNAPSHOT.current_generation(warehouse) is not None
    assert _search(warehouse, "").total_count == 0  # proof the emptied snapshot is what answers now
    assert _search(warehouse, "as-of:2299-01-01T00:00:00Z").total_count > 0
