"""The artifacts summary snapshot: used only while its change stamp is current, so it never changes an answer.

Every list and overview answer read from a snapshot is compared with the same answer computed from the
views, on the hand-built Triage history and on a demo organisation (every column, every sort).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

import history.snapshots as snapshots
from bench._demo_events import demo_events
from history.alert_filter import parse
from history.artifact_summary import SNAPSHOT, refresh_summary_snapshot, summary_source
from history.client import Warehouse
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent
from pipeline.history_writer import WarehouseWriter
from web.queries import SORT_KEYS, ArtifactListPage, OverviewCounts, artifact_list, overview_counts

from .builders import Events, Triage, digest

LIST_QUERIES = ("", "has:deployment runtime-risk:internet-exposed", "severity:critical", "-has:deployment",
                "environment:prod OR environment:staging", "cvss:>7 epss:>0.1")


def _load(warehouse: Warehouse, events: list[ArtifactEvent]) -> None:
    insert_events(warehouse, events, dedup_token=f"t:{uuid.uuid4()}")


def _answers(warehouse: Warehouse) -> tuple[list[ArtifactListPage], OverviewCounts]:
    pages = [artifact_list(warehouse, parse(q), per_page=200) for q in LIST_QUERIES]
    pages += [artifact_list(warehouse, parse(""), sort=s, descending=d, per_page=7, page=2)
              for s in SORT_KEYS for d in (True, False)]
    pages.append(artifact_list(warehouse, parse(""), find="payments"))
    return pages, overview_counts(warehouse)


def _generations(warehouse: Warehouse) -> list[int]:
    rows = warehouse.query("SELECT DISTINCT generation FROM artifact_summary_snapshot ORDER BY generation")
    return [int(g) for (g,) in rows.result_rows]


def test_the_snapshot_answers_exactly_as_the_views_do(warehouse: Warehouse) -> None:
    history = Triage()
    _load(warehouse, history.events)
    computed = _answers(warehouse)
    assert SNAPSHOT.current_generation(warehouse) is None
    assert refresh_summary_snapshot(warehouse)
    assert SNAPSHOT.current_generation(warehouse) is not None
    assert "artifact_summary_snapshot" in summary_source(warehouse, None)[0]
    assert _answers(warehouse) == computed
    assert computed[0][0].total == 4  # the four families of Triage: the answers compared are not empty


def test_the_snapshot_matches_on_a_demo_organisation(warehouse: Warehouse) -> None:
    demo = demo_events(seed=3, now=datetime.now(UTC).replace(microsecond=0), target_events=2_000)
    _load(warehouse, list(demo.events))
    computed = _answers(warehouse)
    assert refresh_summary_snapshot(warehouse)
    assert _answers(warehouse) == computed
    assert computed[1].artifacts > 20 and computed[1].open_alerts > 0


def test_refresh_writes_a_generation_only_when_an_event_arrived(warehouse: Warehouse) -> None:
    _load(warehouse, Triage().events)
    assert refresh_summary_snapshot(warehouse)
    assert not refresh_summary_snapshot(warehouse)
    assert len(_generations(warehouse)) == 1
    # Unlike the deployed-now stamp, any kind of event moves this one: an alert changes the counts.
    _load(warehouse, [Events().alert(digest("index"), minute=90, vuln="CVE-2025-9", severity="low")])
    assert SNAPSHOT.current_generation(warehouse) is None
    assert refresh_summary_snapshot(warehouse)
    assert len(_generations(warehouse)) == 2  # the superseded one stays a while for readers that picked it


def test_a_stale_snapshot_is_not_used(warehouse: Warehouse) -> None:
    history = Triage()
    _load(warehouse, history.events)
    refresh_summary_snapshot(warehouse)
    before = artifact_list(warehouse, parse("severity:critical")).rows
    assert {r.digest for r in before} == {history.index}
    late = Events().alert(history.x, minute=95, vuln="CVE-2025-7777", severity="critical", cvss=9.1)
    _load(warehouse, [late])
    assert "artifact_summary_snapshot" not in summary_source(warehouse, None)[0]
    after = artifact_list(warehouse, parse("severity:critical")).rows
    assert {r.digest for r in after} == {history.index, history.x}


def test_as_of_reads_never_use_the_snapshot(warehouse: Warehouse) -> None:
    _load(warehouse, Triage().events)
    refresh_summary_snapshot(warehouse)
    sql, parameters = summary_source(warehouse, datetime(2025, 1, 1, tzinfo=UTC))
    assert "artifact_summary_snapshot" not in sql and "as_of" in parameters


def test_a_generation_whose_stamp_moved_while_computing_is_never_used(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = Triage()
    _load(warehouse, history.events)
    real_stamp = snapshots._stamp
    calls = {"n": 0}

    def stamp_then_a_batch_lands(w: Warehouse) -> tuple[int, int]:
        calls["n"] += 1
        if calls["n"] == 2:  # the read after computing: a batch landed meanwhile
            _load(w, [Events().alert(history.x, minute=96, vuln="CVE-2025-8888", severity="low")])
        return real_stamp(w)

    monkeypatch.setattr(snapshots, "_stamp", stamp_then_a_batch_lands)
    assert not refresh_summary_snapshot(warehouse)
    assert SNAPSHOT.current_generation(warehouse) is None  # its rows were written, but never marked complete
    monkeypatch.setattr(snapshots, "_stamp", real_stamp)
    assert refresh_summary_snapshot(warehouse)
    assert _answers(warehouse)[1].open_alerts == overview_counts_computed(warehouse).open_alerts


def overview_counts_computed(warehouse: Warehouse) -> OverviewCounts:
    """The overview from the views, whatever snapshot exists (an as-of far in the future reads the same)."""
    return overview_counts(warehouse, as_of=datetime(2299, 1, 1, tzinfo=UTC))


def test_superseded_generations_are_dropped_once_old(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    _load(warehouse, Triage().events)
    refresh_summary_snapshot(warehouse)
    _load(warehouse, [Events().alert(digest("x"), minute=97, vuln="CVE-2025-1", severity="low")])
    refresh_summary_snapshot(warehouse)
    assert len(_generations(warehouse)) == 2
    monkeypatch.setattr(snapshots, "KEEP_SUPERSEDED_S", 0.0)
    _load(warehouse, [Events().alert(digest("x"), minute=98, vuln="CVE-2025-2", severity="low")])
    assert refresh_summary_snapshot(warehouse)
    newest = SNAPSHOT.current_generation(warehouse)
    assert _generations(warehouse) == [newest]


def test_the_sink_writer_refreshes_both_snapshots_and_spaces_refreshes_by_their_cost(warehouse: Warehouse) -> None:
    writer = WarehouseWriter(warehouse, refresh_every=0.0, cost_share=0.0)
    writer.write(Triage().events, dedup_token=f"t:{uuid.uuid4()}")
    assert writer.refreshes == {"deployed_now": 1, "artifact_summary": 1, "alert_context": 1}
    assert writer.refresh_seconds["artifact_summary"] > 0
    assert SNAPSHOT.current_generation(warehouse) is not None
    # An alert moves only the summary's stamp.
    writer.write([Events().alert(digest("x"), minute=99, vuln="CVE-2025-3", severity="low")],
                 dedup_token=f"t:{uuid.uuid4()}")
    assert writer.refreshes == {"deployed_now": 1, "artifact_summary": 2, "alert_context": 2}
    # With a cost share, the next refresh waits a multiple of what this one took.
    costly = WarehouseWriter(warehouse, refresh_every=0.0, cost_share=1_000.0)
    costly.write([Events().alert(digest("x"), minute=100, vuln="CVE-2025-4", severity="low")],
                 dedup_token=f"t:{uuid.uuid4()}")
    costly.write([Events().alert(digest("x"), minute=101, vuln="CVE-2025-5", severity="low")],
                 dedup_token=f"t:{uuid.uuid4()}")
    costly.idle()
    assert costly.refreshes["artifact_summary"] == 1
    assert SNAPSHOT.current_generation(warehouse) is None  # stale: the pages compute until the next refresh
