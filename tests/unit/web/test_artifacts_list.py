"""The artifacts list over a history with known answers (tests.unit.history.builders.Triage): one row per
artifact family, the alert filter vocabulary read as artifact properties, search, sort and paging."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from history.alert_filter import parse
from history.client import Warehouse
from tests.unit.history.builders import Triage, at
from web.queries import SeverityCounts, artifact_list

from .conftest import BEARER, insert

ROW = re.compile(r'<tr data-digest="(sha256:[0-9a-f]{64})">')


@pytest.fixture(scope="module")
def triage(database: Warehouse) -> Iterator[Triage]:
    history = Triage()
    insert(database, history.events)
    yield history


@pytest.fixture
def client(database: Warehouse, triage: Triage, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


def listed(client: TestClient, **params: object) -> list[str]:
    response = client.get("/artifacts", params=params, headers=BEARER)
    assert response.status_code == 200, response.text
    return ROW.findall(response.text)


def digests(warehouse: Warehouse, query: str) -> list[str]:
    return [row.digest for row in artifact_list(warehouse, parse(query)).rows]


def test_every_artifact_family_is_one_row_named_by_its_root(database: Warehouse, triage: Triage) -> None:
    rows = {row.digest: row for row in artifact_list(database, parse("")).rows}
    # The platforms fold into their index; the superseded and the decommissioned images stay listed.
    assert set(rows) == {triage.index, triage.x, triage.old, triage.gone}
    index = rows[triage.index]
    assert index.digests == tuple(sorted([triage.index, triage.amd64, triage.arm64]))
    assert index.name == "acme/payments-api"
    assert index.registries == ("jfrog-artifactory",)
    assert index.registry_hosts == ("acme.jfrog.io",)
    assert index.repositories == ("acme/payments-api",)
    assert index.deployed and index.environments == ("prod",)
    assert [(loc.environment, loc.cluster) for loc in index.locations] == [("prod", "aks-prod-1")]
    assert index.runtime_risks == ("internet-exposed",)
    assert not rows[triage.old].deployed and not rows[triage.gone].deployed


def test_open_alerts_count_the_platforms_and_the_build_repository(database: Warehouse, triage: Triage) -> None:
    rows = {row.digest: row for row in artifact_list(database, parse("")).rows}
    # critical CVE on the arm64 platform + medium Dependabot alert on the repository; the fixed low is not open.
    assert rows[triage.index].open_alerts == SeverityCounts(critical=1, medium=1)
    assert rows[triage.index].fixed_alerts == 1
    assert rows[triage.x].open_alerts == SeverityCounts(high=1)
    assert rows[triage.old].open_alerts.total == 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("has:deployment", ["index"]),
        ("runtime-risk:internet-exposed", ["index"]),
        ("runtime-risk:sensitive-data", []),
        ("environment:PROD", ["index"]),
        ("artifact-registry:ghcr", ["x"]),
        ("artifact-registry:jfrog-artifactory", ["index"]),
        ("artifact-registry-url:https://ghcr.io/", ["x"]),
        ("repo:Acme/Payments-API", ["index"]),
        ("severity:critical", ["index"]),
        ("-severity:critical", ["gone", "old", "x"]),
        ("severity:high", ["gone", "x"]),
        ("is:fixed", ["index"]),
        ("is:open -has:deployment", ["gone", "x"]),
        ("cvss:>9", ["index"]),
        ("cvss:<8", ["x"]),
        ("severity:high OR has:deployment", ["gone", "index", "x"]),
    ],
)
def test_filters_mean_what_they_mean_for_alerts_but_of_the_artifact(
    database: Warehouse, triage: Triage, query: str, expected: list[str]
) -> None:
    names = {triage.index: "index", triage.x: "x", triage.old: "old", triage.gone: "gone"}
    assert sorted(names[d] for d in digests(database, query)) == expected


def test_as_of_shows_what_was_deployed_then(database: Warehouse, triage: Triage) -> None:
    # Before the index took slot S1 (minute 10), the old image held it and the staging one still ran.
    when = at(9).isoformat()
    assert sorted(digests(database, f"has:deployment as-of:{when}")) == sorted([triage.old, triage.gone])
    # The staging slot was deleted at minute 50.
    at_45 = f"has:deployment as-of:{at(45).isoformat()}"
    assert sorted(digests(database, at_45)) == sorted([triage.index, triage.gone])
    assert digests(database, f"has:deployment as-of:{at(55).isoformat()}") == [triage.index]


def test_the_page_lists_what_the_query_returns(client: TestClient, database: Warehouse, triage: Triage) -> None:
    assert listed(client, chip="has:deployment") == [triage.index]
    assert listed(client, q="severity:high", sort="digest", dir="asc") == sorted([triage.x, triage.gone])
    assert listed(client) == digests(database, "")


def test_chips_and_the_typed_query_combine(client: TestClient, triage: Triage) -> None:
    response = client.get("/artifacts", params={"chip": ["artifact-registry:ghcr"], "q": "severity:high"},
                          headers=BEARER)
    assert ROW.findall(response.text) == [triage.x]
    assert 'data-term="artifact-registry:ghcr"' in response.text
    assert 'class="chip on" data-term="artifact-registry:ghcr" aria-pressed="true"' in response.text


def test_find_matches_a_digest_prefix_a_name_or_a_repository(client: TestClient, triage: Triage) -> None:
    assert listed(client, find=triage.gone.removeprefix("sha256:")[:10]) == [triage.gone]
    assert listed(client, find=triage.arm64[:20]) == [triage.index]  # a platform finds its artifact
    assert sorted(listed(client, find="PAYMENTS-API")) == sorted([triage.index, triage.x])


def test_sorting_by_alerts_puts_the_most_severe_first(client: TestClient, triage: Triage) -> None:
    rows = listed(client, sort="alerts", dir="desc")
    assert rows[0] == triage.index
    assert rows[-1] == triage.old
    assert listed(client, sort="alerts", dir="asc")[0] == triage.old


def test_sorting_by_digest_both_ways(client: TestClient, triage: Triage) -> None:
    everything = sorted([triage.index, triage.x, triage.old, triage.gone])
    assert listed(client, sort="digest", dir="asc") == everything
    assert listed(client, sort="digest", dir="desc") == everything[::-1]


def test_an_unknown_sort_falls_back_to_alerts(client: TestClient, triage: Triage) -> None:
    assert listed(client, sort="'; DROP TABLE events; --") == listed(client, sort="alerts")


def test_pages_split_the_sorted_list(client: TestClient, triage: Triage) -> None:
    everything = sorted([triage.index, triage.x, triage.old, triage.gone])
    pages = [listed(client, sort="digest", dir="asc", per_page=3, page=n) for n in (1, 2)]
    assert pages == [everything[:3], everything[3:]]
    response = client.get("/artifacts", params={"sort": "digest", "dir": "asc", "per_page": 3, "page": 1},
                          headers=BEARER)
    assert "page 1 of 2 · 4 artifacts" in response.text
    assert 'rel="next"' in response.text and "page=2" in response.text


def test_a_page_past_the_end_still_says_how_many_there_are(database: Warehouse, triage: Triage) -> None:
    page = artifact_list(database, parse(""), per_page=2, page=9)
    assert page.rows == () and page.total == 4 and page.pages == 2


def test_a_bad_filter_is_a_400_that_names_the_known_filters(client: TestClient, triage: Triage) -> None:
    response = client.get("/artifacts", params={"q": "colour:blue"}, headers=BEARER)
    assert response.status_code == 400
    assert "That filter cannot be used" in response.text
    assert "unknown filter" in response.text and "has:deployment" in response.text


def test_a_filter_that_matches_nothing_says_how_to_widen_it(client: TestClient, triage: Triage) -> None:
    response = client.get("/artifacts", params={"q": "environment:nowhere"}, headers=BEARER)
    assert response.status_code == 200
    assert "No artifact matches" in response.text and "Switch a chip off" in response.text
    assert "linked-artifacts demo" not in response.text


def test_the_row_shows_registry_tags_repository_deployment_risks_and_counts(
    client: TestClient, triage: Triage
) -> None:
    html = client.get("/artifacts", params={"find": triage.index[7:20]}, headers=BEARER).text
    row = html[html.index(f'<tr data-digest="{triage.index}">'):]
    row = row[:row.index("</tr>")]
    for text in ("acme/payments-api", "jfrog-artifactory", "prod", "aks-prod-1", "internet-exposed",
                 'data-severity="critical"', "C 1", "M 1", 'data-open-total="2"', f'href="/artifacts/{triage.index}"'):
        assert text in row, text
