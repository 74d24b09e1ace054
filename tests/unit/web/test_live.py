"""Live refresh: a page polls /web/pulse and, when the event count moves, swaps in the body that
/web/live/<page> renders with the same function as the page itself."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi.testclient import TestClient

from history.client import Warehouse
from tests.unit.history.builders import Events, digest

from .conftest import BEARER, insert


def main_of(html: str) -> str:
    start = html.index(">", html.index('<main id="live"')) + 1
    return html[start:html.rindex("</main>")].strip()


def test_the_page_carries_its_live_address_and_the_event_count(
    database: Warehouse, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(database)
    html = client.get("/artifacts", params={"q": "has:deployment", "sort": "name"}, headers=BEARER).text
    live = re.search(r'data-live="([^"]+)" data-pulse="(\d+)" data-refresh-ms="(\d+)"', html)
    assert live is not None
    assert live.group(1).replace("&amp;", "&") == "/web/live/artifacts?q=has%3Adeployment&sort=name"
    assert int(live.group(2)) == client.get("/web/pulse", headers=BEARER).json()["events"]


def test_new_events_move_the_pulse_and_appear_in_the_live_body(
    database: Warehouse, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(database)
    before = client.get("/web/pulse", headers=BEARER).json()["events"]
    fresh = digest("live-refresh")
    insert(database, [Events().storage(fresh, tags=["v-live"])])
    assert client.get("/web/pulse", headers=BEARER).json()["events"] == before + 1
    body = client.get("/web/live/artifacts", params={"find": fresh[7:19]}, headers=BEARER).json()
    assert body["events"] == before + 1 and body["status"] == 200
    assert f'<tr data-digest="{fresh}">' in body["html"] and "v-live" in body["html"]


def test_the_live_body_is_the_page_body(database: Warehouse, client_for: Callable[..., TestClient]) -> None:
    client = client_for(database)
    for path in ("/artifacts", "/triage", "/overview"):
        page = client.get(path, headers=BEARER).text
        live = client.get("/web/live" + path, headers=BEARER).json()["html"]
        assert main_of(page) == live.strip(), path


def test_an_unknown_live_page_is_a_404(database: Warehouse, client_for: Callable[..., TestClient]) -> None:
    response = client_for(database).get("/web/live/nothing", headers=BEARER)
    assert response.status_code == 404
