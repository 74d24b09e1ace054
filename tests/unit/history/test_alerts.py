"""Prioritised alerts: known answers, the ranking, and filters that mean in SQL what they mean in Python."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.alert_filter import AlertQuery, FilterError, UnknownFilter, compile_query, evaluate, render
from history.alerts import MAX_EXPORT, MAX_LIMIT, InvalidParameter, context_sql, rank, search_alerts
from history.client import Warehouse, as_of_parameters
from history.rows import insert_events

from .builders import Events, Triage, digest
from .conftest import open_database
from .strategies import HOSTILE, QUERIES


def _extra_history() -> list[Any]:
    """More variety for the property tests: a staging family, scores missing, a repository nobody builds."""
    e = Events()
    staging, plat = digest("staging-index"), digest("staging-arm64")
    return [
        e.link(staging, plat, arch="linux/arm64"),
        e.storage(staging, registry="docker-hub", registry_url="https://hub.docker.com", repository="acme/stg"),
        e.build(staging, repository="acme/other", run_id=7, attestation="b" * 64),
        e.deploy(
            staging,
            env="staging",
            cluster="aks-stg-1",
            name="stg-api",
            risks=["lateral-movement", "critical-resource"],
            asserted_by="k8s:aks-stg-1",
        ),
        e.alert(plat, vuln="CVE-2025-5555", severity="unknown", cvss=None, epss=None),
        e.alert(staging, vuln="CVE-2025-6666", severity="high", cvss=7.0, epss=0.1, state="dismissed"),
        e.alert("", repository="acme/unbuilt", vuln="GHSA-zzzz", severity="critical", cvss=10.0, epss=1.0),
        e.alert("", repository="acme/other", vuln="GHSA-oooo", severity="low", cvss=3.1, epss=0.3),
    ]


@pytest.fixture(scope="module")
def triage_db() -> Iterator[tuple[Warehouse, Triage]]:
    warehouse = open_database(f"la_alerts_{os.getpid()}")
    history = Triage()
    insert_events(warehouse, [*history.events, *_extra_history()], dedup_token=f"t:{uuid.uuid4()}")
    yield warehouse, history
    warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
    warehouse.close()


def _keys(warehouse: Warehouse, query: str) -> list[str]:
    return [r.alert_key for r in search_alerts(warehouse, query, limit=100).results]


def test_deployed_internet_exposed_alerts_in_rank_order(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, t = triage_db
    search = search_alerts(warehouse, "has:deployment runtime-risk:internet-exposed", limit=10)
    assert [r.alert_key for r in search.results] == [t.key(t.cve_b), t.key(t.repo_alert), t.key(t.fixed_i)]
    assert search.total_count == 3
    top = search.results[0]
    assert (top.rank, top.score, top.artifact, top.deployed) == (1, 113, t.index, True)
    assert top.points == {"severity": 40, "cvss": 20, "epss": 18, "exposure": 25, "environment": 10}
    assert top.first_seen.isoformat() == "2025-03-03T09:20:00+00:00"
    assert top.title == "CVE-2025-1111 in openssl"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("has:deployment is:open", ["cve_b", "repo_alert"]),
        ("-has:deployment is:open severity:high", ["cve_gone", "cve_x"]),
        ("artifact-registry:ghcr", ["cve_x"]),
        ("artifact-registry-url:https://acme.jfrog.io/", ["cve_b", "repo_alert", "fixed_i"]),
        ("repo:acme/payments-api is:open", ["cve_b", "repo_alert"]),
        ("cvss:>7 epss:<0.5", ["cve_gone", "cve_x"]),
        ("environment:staging", []),
        ("severity:critical OR (severity:medium -is:fixed)", ["cve_b", "repo_alert"]),
    ],
)
def test_filters_with_known_answers(triage_db: tuple[Warehouse, Triage], query: str, expected: list[str]) -> None:
    warehouse, t = triage_db
    got = [
        k
        for k in _keys(warehouse, query)
        if not k.startswith(("trivy:CVE-2025-5", "trivy:CVE-2025-6", "trivy:GHSA-zzzz", "trivy:GHSA-oooo"))
    ]
    assert got == [t.key(getattr(t, name)) for name in expected]


def test_as_of_answers_as_things_were(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, t = triage_db
    # At 09:30 the staging slot still ran GONE, and the CVE on GONE existed (09:24).
    assert t.key(t.cve_gone) in _keys(warehouse, "has:deployment as-of:2025-03-03T09:30:00Z")
    assert t.key(t.cve_gone) not in _keys(warehouse, "has:deployment")
    assert _keys(warehouse, "as-of:2025-03-03T08:00:00Z") == []


def test_reasons_explain_a_result_that_is_not_deployed(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, t = triage_db
    [result] = [r for r in search_alerts(warehouse, "artifact-registry:ghcr", limit=5).results]
    assert result.reasons == ["high severity (+30)", "CVSS 7.5 (+15)", "EPSS 0.05 (+1)", "not deployed (+0)"]
    assert result.score == 46


def test_paging_and_totals(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, _ = triage_db
    everything = search_alerts(warehouse, "", limit=100)
    page = search_alerts(warehouse, "", limit=2, offset=2)
    assert [r.alert_key for r in page.results] == [r.alert_key for r in everything.results[2:4]]
    assert [r.rank for r in page.results] == [3, 4]
    past = search_alerts(warehouse, "", limit=5, offset=500)
    assert (past.results, past.total_count) == ([], everything.total_count)
    scores = [r.score for r in everything.results]
    assert scores == sorted(scores, reverse=True)


def test_the_api_page_is_capped_and_an_export_reads_everything_at_once(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, _ = triage_db
    with pytest.raises(InvalidParameter, match=f"limit must be between 1 and {MAX_LIMIT}"):
        search_alerts(warehouse, "", limit=MAX_LIMIT + 1)
    export = search_alerts(warehouse, "", limit=MAX_EXPORT, max_limit=MAX_EXPORT)
    assert len(export.results) == export.total_count
    assert export.results == search_alerts(warehouse, "", limit=MAX_LIMIT).results[: export.total_count]


def test_unknown_filter_reaches_the_caller_as_a_typed_error(triage_db: tuple[Warehouse, Triage]) -> None:
    warehouse, _ = triage_db
    with pytest.raises(UnknownFilter, match="has:deployment"):
        search_alerts(warehouse, "team:payments")


def _context_rows(warehouse: Warehouse, as_of: datetime | None) -> list[dict[str, Any]]:
    return warehouse.rows(context_sql(as_of), as_of_parameters(as_of))


def _identity(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["subject"], row["alert_key"], row["family"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(query=QUERIES)
def test_every_filter_means_in_sql_what_it_means_in_python(
    triage_db: tuple[Warehouse, Triage], query: AlertQuery
) -> None:
    warehouse, _ = triage_db
    expected = {_identity(row) for row in _context_rows(warehouse, query.as_of) if evaluate(query.expr, row)}
    total, results = rank(warehouse, compile_query(query), limit=1000)
    got = {(r.subject, r.alert_key, r.artifact or "") for r in results}
    assert got == expected, render(query)
    assert total == len(expected)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    text=st.one_of(
        st.text(max_size=120),
        st.sampled_from(HOSTILE).flatmap(
            lambda h: st.sampled_from([h, f"repo:{h}", f'repo:"{h}"', f"environment:{h} OR is:open", f"-({h})"])
        ),
    )
)
def test_hostile_queries_are_refused_or_compared_as_plain_values(
    triage_db: tuple[Warehouse, Triage], text: str
) -> None:
    warehouse, _ = triage_db
    before = warehouse.query("SELECT count() FROM events").result_rows
    tables = warehouse.query(
        "SELECT count() FROM system.tables WHERE database = {db:String}", {"db": warehouse.database}
    ).result_rows
    try:
        search_alerts(warehouse, text, limit=5)
    except FilterError:
        pass
    assert warehouse.query("SELECT count() FROM events").result_rows == before
    assert (
        warehouse.query(
            "SELECT count() FROM system.tables WHERE database = {db:String}", {"db": warehouse.database}
        ).result_rows
        == tables
    )


@pytest.mark.parametrize(
    "query",
    [
        "has:deployment runtime-risk:internet-exposed",
        "",
        "repo:acme/other OR cvss:>=9",
        "environment:staging as-of:2025-03-03T09:30:00Z",
    ],
)
def test_servers_without_materialized_ctes_get_the_same_answers(
    triage_db: tuple[Warehouse, Triage], query: str
) -> None:
    warehouse, _ = triage_db
    materialized = search_alerts(warehouse, query, limit=100)
    inline = warehouse.session()
    inline._materialized_cte = False  # as on a ClickHouse server older than 25.x
    try:
        assert search_alerts(inline, query, limit=100) == materialized
    finally:
        inline.close()
