"""The web pages in a real headless Chromium, on the demo organisation.

The query API with the pages mounted runs in-process under uvicorn over a chDB warehouse that holds the
demo organisation (made by the connectors' own parsers, see bench/_demo_events.py) plus one event full of
markup. The browser logs in with the token link, clicks from the artifacts list to an artifact to the
triage page, applies chips and the as-of picker, downloads the CSV export and an attestation, and every
value it reads is checked against the JSON API. Screenshots go to test-artifacts/screenshots/.

Needs Debian's chromium (``apt-get install chromium``) and Playwright for Python (``pip install
playwright``; its own browser download, ``playwright install``, is not used).
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from bench._demo_events import demo_events, load
from history.client import Warehouse
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings
from pipeline.query_api import create_query_api
from tests.conftest import free_port
from web import mount_web

pytestmark = pytest.mark.integration


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TOKEN = "browser-test-token"
DEMO_EVENTS = 6_000
NOW = datetime.now(UTC).replace(microsecond=0)
HOSTILE = "sha256:" + hashlib.sha256(b"hostile").hexdigest()
SCRIPT_TAG = "<script>window.__xss = 1</script>"
IMG_NAME = '<img src=x onerror="window.__xss = 2">'
# Long enough for a loaded CI machine, short enough that a hung page fails the run quickly.
WAIT_MS = 20_000


class Attestations:
    """The demo's attestation bytes, as the Kafka attestations topic would hold them."""

    def __init__(self, by_sha: dict[str, bytes]) -> None:
        self.by_sha = by_sha

    async def fetch(self, sha256_hex: str) -> bytes | None:
        return self.by_sha.get(sha256_hex)


def hostile_events() -> list[ArtifactEvent]:
    base = {"key": HOSTILE, "source": "demo", "digest": HOSTILE, "event_time": NOW - timedelta(hours=2),
            "ingest_time": NOW - timedelta(minutes=1)}
    return [
        ArtifactEvent.model_validate({**base, "event_id": "hostile-storage", "delivery_id": "h1", "kind": "storage",
                                      "storage": {"registry": "jfrog-artifactory",
                                                  "registry_url": "https://acme.jfrog.io/", "repository": "evil",
                                                  "name": IMG_NAME, "tags": [SCRIPT_TAG], "action": "pushed"}}),
        ArtifactEvent.model_validate({**base, "event_id": "hostile-deploy", "delivery_id": "h2",
                                      "kind": "deployment",
                                      "deployment": {"logical_environment": "prod", "cluster": "aks-evil",
                                                     "deployment_name": SCRIPT_TAG, "status": "deployed",
                                                     "risks_asserted_by": IMG_NAME}}),
    ]


class Site:
    """The running pages, the warehouse behind them and an authenticated JSON client for the API."""

    def __init__(self, base: str, warehouse: Warehouse, attestations: dict[str, bytes]) -> None:
        self.base = base
        self.warehouse = warehouse
        self.attestations = attestations
        self.api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def alerts(self, q: str) -> dict[str, Any]:
        response = self.api.get("/v1/alerts", params={"q": q, "limit": 1000})
        assert response.status_code == 200, response.text
        body = response.json()
        return body if isinstance(body, dict) else {"results": body, "total_count": len(body)}

    def artifact(self, digest: str) -> dict[str, Any]:
        response = self.api.get(f"/v1/artifacts/{digest}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


@pytest.fixture(scope="module")
def site(clickhouse_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    warehouse = Warehouse.connect(clickhouse_dsn, database=f"web_browser_{uuid.uuid4().hex[:8]}")
    warehouse.apply_migrations()
    demo = demo_events(seed=11, now=NOW, target_events=DEMO_EVENTS)
    load(warehouse, demo.events, label="browser-demo")
    load(warehouse, hostile_events(), label="browser-hostile")
    settings = Settings(data_dir=tmp_path_factory.mktemp("web"), query_token=TOKEN,
                        connectors_port=free_port())
    api = create_query_api(settings, warehouse=warehouse)
    local = threading.local()

    def session() -> Warehouse:
        if not hasattr(local, "warehouse"):
            local.warehouse = warehouse.session()
        found: Warehouse = local.warehouse
        return found

    # A one-second refresh so the live-refresh test does not wait long.
    mount_web(api, settings, warehouse_session=session, attestations=Attestations(demo.attestations),
              refresh_seconds=1.0)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    handle = Site(f"http://127.0.0.1:{port}", warehouse, demo.attestations)
    try:
        yield handle
    finally:
        handle.api.close()
        server.should_exit = True
        thread.join(timeout=10)
        warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        warehouse.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    # Missing tools fail the run with the fix rather than skip it: a skipped browser test proves nothing.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing. Fix: .venv/bin/pip install playwright (the dev extra)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing. Fix: apt-get install chromium")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser context logged in through the token link; fails the test on any script error."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # A page answered 400 or 404 on purpose is checked by its test; a failing script, stylesheet or fetch
    # is always a bug.
    tab.on("response", lambda r: errors.append(f"{r.status} {r.url}")
           if r.status >= 400 and r.request.resource_type != "document" else None)
    tab.on("console", lambda message: errors.append(message.text)
           if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    tab.goto(f"{site.base}/artifacts?token={TOKEN}")
    yield tab
    context.close()
    assert errors == [], errors


def shot(tab: Any, name: str, *, full_page: bool = False) -> None:
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def rows(tab: Any, table: str) -> Any:
    return tab.locator(f"#{table} tbody tr")


def test_the_token_link_logs_in_and_leaves_the_address_bar(page: Any, site: Site) -> None:
    assert page.url == f"{site.base}/artifacts"
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != TOKEN
    assert page.locator("h1").inner_text() == "Artifacts"
    shot(page, "01-artifacts-list")


def test_the_list_shows_what_the_api_knows_about_each_artifact(page: Any, site: Site) -> None:
    listed = rows(page, "artifacts")
    assert listed.count() == 50
    for i in range(8):
        row = listed.nth(i)
        digest = row.get_attribute("data-digest")
        view = site.artifact(digest)
        environments = {d["logical_environment"].lower() for d in view["deployments"]}
        assert (row.locator("td.deployed").get_attribute("data-deployed") == "yes") == bool(environments)
        for environment in environments:
            assert environment in row.locator("td.deployed").inner_text()
        open_alerts = sum(1 for a in view["alerts"] if a["state"] == "open")
        if len(view["alerts"]) < 100:  # the linked view lists at most 100 alerts
            assert int(row.locator("[data-open-total]").get_attribute("data-open-total")) == open_alerts
        registries = {s["registry"].lower() for s in view["storage"] if s["status"] == "active"}
        assert row.locator("td.registries").inner_text() == (", ".join(sorted(registries)) or "—")


def test_a_chip_filters_the_list_to_deployed_artifacts(page: Any, site: Site) -> None:
    page.locator('a.chip[data-term="has:deployment"]').click()
    page.wait_for_url("**/artifacts?chip=has%3Adeployment")
    assert page.locator('a.chip[data-term="has:deployment"]').get_attribute("aria-pressed") == "true"
    total = int(page.locator("#artifact-count").get_attribute("data-total"))
    assert 0 < total
    for i in range(min(rows(page, "artifacts").count(), 10)):
        digest = rows(page, "artifacts").nth(i).get_attribute("data-digest")
        assert site.artifact(digest)["deployments"], digest
    shot(page, "02-artifacts-deployed")


def test_sorting_by_name_orders_the_rows(page: Any) -> None:
    page.locator('a.sort[data-sort="name"]').click()
    page.wait_for_url("**sort=name**")
    names = [n.lower() for n in rows(page, "artifacts").locator("a.name").all_inner_texts()]
    assert names == sorted(names, reverse=True)  # first click sorts descending
    page.locator('a.sort[data-sort="name"]').click()
    page.wait_for_url("**dir=asc**")
    names = [n.lower() for n in rows(page, "artifacts").locator("a.name").all_inner_texts()]
    assert names == sorted(names)


def test_click_through_list_artifact_and_triage(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/artifacts?chip=runtime-risk%3Ainternet-exposed&chip=environment%3Aprod")
    first = rows(page, "artifacts").first
    digest = first.get_attribute("data-digest")
    first.locator("a.name").click()
    page.wait_for_url(f"**/artifacts/{digest}")
    view = site.artifact(digest)

    # Deployments per environment and cluster, with their risks, as the API has them.
    shown = {(r.get_attribute("data-environment"), r.get_attribute("data-cluster"))
             for r in page.locator("tr.deployment").all()}
    assert shown == {(d["logical_environment"], d["cluster"]) for d in view["deployments"]}
    assert "internet-exposed" in page.locator("#section-deployments").inner_text()
    # Alerts in the API's rank order, each with its reasons.
    keys = [r.get_attribute("data-alert-key") for r in rows(page, "artifact-alerts").all()]
    assert keys == [a["alert_key"] for a in view["alerts"]]
    assert view["alerts"][0]["reasons"][0] in rows(page, "artifact-alerts").first.inner_text()
    # The linked index and platform digests, and a timeline with a lane per environment slot.
    for platform in view["family"]["platform_digests"]:
        assert page.locator(f'#section-digests tr[data-digest="{platform["digest"]}"]').count() == 1
    lanes = page.locator("#timeline text[data-lane]").evaluate_all("els => els.map(e => e.dataset.lane)")
    assert lanes[:2] == ["stored", "built"] and any(lane.startswith("prod") for lane in lanes)
    assert page.locator("#timeline").is_visible()
    shot(page, "03-artifact", full_page=True)
    page.locator("#section-timeline").screenshot(path=str(SCREENSHOTS / "04-artifact-timeline.png"))

    # The provenance link downloads the original attestation bytes.
    link = page.locator("a.attestation").first
    sha = link.get_attribute("href").rsplit("/", 1)[-1]
    with page.expect_download() as download:
        link.click()
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == sha

    # On to the triage page, narrowed with chips.
    page.locator("nav a", has_text="Triage").click()
    page.wait_for_url("**/triage")
    page.locator('a.chip[data-term="runtime-risk:internet-exposed"]').click()
    page.wait_for_url("**chip=runtime-risk%3Ainternet-exposed**")
    page.locator('a.chip[data-term="environment:prod"]').click()
    page.wait_for_url("**chip=environment%3Aprod**")
    expected = site.alerts("runtime-risk:internet-exposed environment:prod")
    assert int(page.locator("#alert-count").get_attribute("data-total")) == expected["total_count"]
    shown_alerts = [(r.get_attribute("data-alert-key"), r.get_attribute("data-subject"))
                    for r in rows(page, "alerts").all()]
    assert shown_alerts == [(a["alert_key"], a["subject"]) for a in expected["results"][:50]]
    first_alert = rows(page, "alerts").first.inner_text()
    for reason in expected["results"][0]["reasons"]:
        assert reason in first_alert
    shot(page, "05-triage-internet-exposed-prod")


def test_the_as_of_picker_shows_the_ranking_at_that_time(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/triage?chip=has%3Adeployment")
    when = (NOW - timedelta(days=10)).replace(second=0)
    page.locator('input[name="as_of"]').fill(when.strftime("%Y-%m-%dT%H:%M"))
    page.locator("form.filters button[type=submit]").click()
    page.wait_for_url("**as_of=**")
    expected = site.alerts(f"has:deployment as-of:{when.isoformat()}")
    assert int(page.locator("#alert-count").get_attribute("data-total")) == expected["total_count"]
    keys = [r.get_attribute("data-alert-key") for r in rows(page, "alerts").all()]
    assert keys == [a["alert_key"] for a in expected["results"][:50]]
    assert "as of" in page.locator("#alert-count").inner_text()
    shot(page, "06-triage-as-of")
    page.locator("button[data-now]").click()
    page.wait_for_url(lambda url: "as_of=" not in url or url.endswith("as_of="))


def test_csv_export_holds_the_current_filter(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/triage?chip=has%3Adeployment&q=severity%3Acritical")
    with page.expect_download() as download:
        page.locator("#csv-export").click()
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    expected = site.alerts("has:deployment severity:critical")
    assert len(exported) == expected["total_count"]
    assert [(r["alert_key"], r["subject"]) for r in exported] == [
        (a["alert_key"], a["subject"]) for a in expected["results"]]


def test_the_overview_charts_agree_with_the_filtered_list(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/overview")
    bars = page.locator("#chart-deployed rect.bar").evaluate_all(
        "els => els.map(e => [e.dataset.label, Number(e.dataset.value)])")
    assert bars
    for environment, count in bars:
        page.goto(f"{site.base}/artifacts?chip=environment%3A{environment}")
        assert int(page.locator("#artifact-count").get_attribute("data-total")) == count, environment
    page.goto(f"{site.base}/overview")
    assert page.locator("#chart-ingest rect.col").count() > 0
    assert page.locator("#connectors-unreachable").is_visible()
    assert page.locator("#chart-exposure rect.bar").count() == 5
    shot(page, "07-overview", full_page=True)


def test_values_with_markup_render_as_text_and_run_nothing(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/artifacts/{HOSTILE}")
    assert page.evaluate("window.__xss") is None
    assert page.locator("#section-storage .tag", has_text=SCRIPT_TAG).count() == 2  # tags now, tags over time
    assert SCRIPT_TAG in page.locator("#section-deployments").inner_text()
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("document.scripts.length") == 1  # app.js and nothing else
    shot(page, "08-markup-as-text")
    page.goto(f"{site.base}/artifacts?find={HOSTILE[7:20]}")
    assert IMG_NAME in rows(page, "artifacts").first.inner_text()
    assert page.evaluate("window.__xss") is None


def test_the_list_refreshes_without_a_reload_while_events_arrive(page: Any, site: Site) -> None:
    fresh = "sha256:" + hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    page.goto(f"{site.base}/artifacts?find={fresh[7:23]}")
    assert page.locator("#empty-state").is_visible()
    page.evaluate("window.__sameDocument = true")
    event = ArtifactEvent.model_validate({
        "event_id": f"live-{fresh}", "key": fresh, "kind": "storage", "source": "demo", "digest": fresh,
        "event_time": datetime.now(UTC), "ingest_time": datetime.now(UTC), "delivery_id": "live",
        "storage": {"registry": "github-packages", "registry_url": "https://ghcr.io", "repository": "acme/live",
                    "name": "acme/arrived-while-watching", "tags": ["v9"], "action": "published"}})
    load(site.warehouse, [event], label=f"live-{fresh}")
    page.locator(f'tr[data-digest="{fresh}"]').wait_for()
    assert page.evaluate("window.__sameDocument") is True  # swapped in place, not reloaded
    assert "acme/arrived-while-watching" in rows(page, "artifacts").first.inner_text()
    assert "updated" in page.locator("#live-status").inner_text()
    shot(page, "09-live-refresh")


def test_a_bad_filter_names_the_fix_in_the_page(page: Any, site: Site) -> None:
    page.goto(f"{site.base}/triage?q=colour%3Ablue")
    assert "unknown filter" in page.locator("#filter-error").inner_text()
    shot(page, "10-bad-filter")

