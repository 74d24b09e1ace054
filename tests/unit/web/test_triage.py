"""The triage page: the ranked alerts of /v1/alerts with filter chips, an as-of picker and CSV export of the
current filter. The page, the CSV and the JSON API agree because they are the same query."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from history.alerts import search_alerts
from history.client import Warehouse
from tests.unit.history.builders import Triage, at

from .conftest import BEARER, insert

ALERT_ROW = re.compile(r'<tr data-alert-key="([^"]+)" data-subject="([^"]+)">')


@pytest.fixture(scope="module")
def triage(database: Warehouse) -> Iterator[Triage]:
    history = Triage()
    insert(database, history.events)
    yield history


@pytest.fixture
def client(database: Warehouse, triage: Triage, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


def shown(client: TestClient, **params: object) -> list[tuple[str, str]]:
    response = client.get("/triage", params=params, headers=BEARER)
    assert response.status_code == 200, response.text[:400]
    return ALERT_ROW.findall(response.text)


def api(client: TestClient, q: str) -> list[tuple[str, str]]:
    response = client.get("/v1/alerts", params={"q": q, "limit": 1000}, headers=BEARER)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"] if isinstance(body, dict) else body  # AlertSearch, or a bare list
    return [(a["alert_key"], a["subject"]) for a in results]


@pytest.mark.parametrize("chips", [[], ["has:deployment"], ["runtime-risk:internet-exposed"], ["environment:prod"],
                                   ["artifact-registry:ghcr"], ["has:deployment", "environment:prod"]])
def test_the_page_shows_the_api_ranking_for_each_chip(client: TestClient, chips: list[str]) -> None:
    assert shown(client, chip=chips) == api(client, " ".join(chips))


def test_chips_offer_every_risk_and_the_environments_and_registries_seen(client: TestClient) -> None:
    html = client.get("/triage", headers=BEARER).text
    for term in ("has:deployment", "runtime-risk:internet-exposed", "runtime-risk:sensitive-data",
                 "runtime-risk:critical-resource", "runtime-risk:lateral-movement", "environment:prod",
                 "environment:staging", "artifact-registry:ghcr", "artifact-registry:jfrog-artifactory"):
        assert f'data-term="{term}"' in html, term


def test_a_chip_link_switches_that_chip_and_keeps_the_others(client: TestClient) -> None:
    html = client.get("/triage", params={"chip": ["has:deployment"], "q": "severity:critical"}, headers=BEARER).text
    on = re.search(r'<a class="chip on" data-term="has:deployment"[^>]*href="([^"]+)"', html)
    off = re.search(r'<a class="chip" data-term="environment:prod"[^>]*href="([^"]+)"', html)
    assert on is not None and off is not None
    assert "chip=" not in on.group(1).replace("&amp;", "&").split("?", 1)[1].replace("q=severity", "")
    assert "chip=has%3Adeployment" in off.group(1) and "chip=environment%3Aprod" in off.group(1)
    assert "q=severity%3Acritical" in off.group(1)


def test_the_as_of_picker_asks_the_ranking_about_that_time(client: TestClient, database: Warehouse) -> None:
    when = at(9)
    picked = shown(client, chip=["has:deployment"], as_of=when.strftime("%Y-%m-%dT%H:%M:%S"))
    expected = search_alerts(database, f"has:deployment as-of:{when.isoformat()}", limit=100)
    assert picked == [(a.alert_key, a.subject) for a in expected.results]
    assert picked != shown(client, chip=["has:deployment"])


def test_a_bad_as_of_is_explained(client: TestClient) -> None:
    response = client.get("/triage", params={"as_of": "tuesday"}, headers=BEARER)
    assert response.status_code == 400
    assert "as-of:" in response.text and "ISO 8601" in response.text


def test_paging_walks_the_ranking(client: TestClient) -> None:
    everything = api(client, "")
    pages = [shown(client, per_page=2, page=n) for n in (1, 2, 3)]
    assert [row for rows in pages for row in rows] == everything[:6]


def test_csv_export_has_every_alert_of_the_filter_in_rank_order(client: TestClient) -> None:
    response = client.get("/triage.csv", params={"chip": ["has:deployment"]}, headers=BEARER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="linked-artifacts-alerts-')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["alert_key"], r["subject"]) for r in rows] == api(client, "has:deployment")
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["deployed"] == "true" for r in rows)
    assert rows[0]["reasons"].startswith("critical severity (+40); CVSS 9.8 (+20)")


def test_the_export_link_carries_the_current_filter(client: TestClient) -> None:
    html = client.get("/triage", params={"chip": ["environment:prod"], "q": "severity:critical"}, headers=BEARER).text
    link = re.search(r'id="csv-export" href="([^"]+)"', html)
    assert link is not None
    assert link.group(1).replace("&amp;", "&") == "/triage.csv?chip=environment%3Aprod&q=severity%3Acritical"


def test_each_alert_names_its_artifact_and_why_it_ranks_there(client: TestClient, triage: Triage) -> None:
    html = client.get("/triage", params={"chip": ["runtime-risk:internet-exposed"]}, headers=BEARER).text
    first = html[html.index("<tr data-alert-key="):]
    first = first[:first.index("</tr>")]
    assert f'href="/artifacts/{triage.index}"' in first
    assert "<li>critical severity (+40)</li>" in first and "internet-exposed in prod (+25)" in first
    assert "on platform" in first  # the CVE was reported on the arm64 manifest


def test_a_filter_that_matches_nothing_says_how_to_widen_it(client: TestClient) -> None:
    response = client.get("/triage", params={"q": "environment:mars"}, headers=BEARER)
    assert "No alert matches" in response.text
