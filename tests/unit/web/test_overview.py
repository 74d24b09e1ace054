"""The overview: ingest rate by source, rejects by reason (from the connectors' own counters), deployed
artifacts by environment and open alerts by exposure, as server-rendered SVG."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from connectors.metrics import ConnectorMetrics
from history.client import Warehouse
from linked_artifacts.events import ArtifactEvent
from tests.unit.history.builders import Triage, digest
from web.connector_metrics import fetch_rejects, parse_rejects
from web.queries import ingest_rate

from .conftest import BEARER, insert

NOW = datetime.now(UTC)


def recent(n: int, source: str, minutes_ago: float) -> ArtifactEvent:
    d = digest(f"recent-{n}")
    return ArtifactEvent.model_validate({
        "event_id": f"recent-{n}", "key": d, "kind": "link", "source": source, "digest": d,
        "event_time": NOW - timedelta(days=2), "ingest_time": NOW - timedelta(minutes=minutes_ago),
        "delivery_id": f"r-{n}", "link": {"index_digest": d, "platform_digest": digest(f"p-{n}")},
    })


RECENT = [recent(i, "github", 3) for i in range(5)] + [recent(10 + i, "trivy", 12) for i in range(2)]


@pytest.fixture(scope="module")
def triage(database: Warehouse) -> Iterator[Triage]:
    history = Triage()
    insert(database, history.events)
    insert(database, RECENT)
    yield history


@pytest.fixture
def client(database: Warehouse, triage: Triage, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


def bars(html: str, chart: str) -> dict[str, int]:
    start = html.index(f'id="chart-{chart}"')
    part = html[start:html.index("</figure>", start)]
    return {label: int(value) for label, value in re.findall(r'data-label="([^"]+)" data-value="(\d+)"', part)}


def test_deployed_artifacts_by_environment_and_open_alerts_by_exposure(client: TestClient) -> None:
    html = client.get("/overview", headers=BEARER).text
    assert bars(html, "deployed") == {"prod": 1}
    exposure = bars(html, "exposure")
    # The index runs internet-exposed in prod with two open alerts (critical CVE, repository alert);
    # the GHCR-only image and the decommissioned one have one open alert each.
    assert exposure["internet-exposed in production"] == 2
    assert exposure["not deployed"] == 2
    tile = re.search(r'id="tile-open">(\d+)<', html)
    assert tile is not None and sum(exposure.values()) == int(tile.group(1))


def test_the_tiles_count_events_artifacts_and_deployments(client: TestClient, triage: Triage) -> None:
    html = client.get("/overview", headers=BEARER).text
    assert f'id="tile-events">{len(triage.events) + len(RECENT)}<' in html
    # The Triage families, plus one per recent link (an index of its own with one platform).
    assert f'id="tile-artifacts">{4 + len(RECENT)}<' in html
    assert 'id="tile-deployed">1<' in html


def test_ingest_rate_counts_events_per_source_per_minute(database: Warehouse, triage: Triage) -> None:
    rate = ingest_rate(database, now=NOW)
    totals = {s.source: s.total for s in rate.series}
    assert totals == {"github": 5, "trivy": 2}
    github = next(s for s in rate.series if s.source == "github")
    assert github.per_minute[-4] == 5  # three minutes ago, in the minute bucket it fell in
    assert len(github.per_minute) == 60


def test_the_ingest_chart_draws_a_column_per_source_and_minute(client: TestClient) -> None:
    html = client.get("/overview", headers=BEARER).text
    chart = html[html.index('id="chart-ingest"'):]
    chart = chart[:chart.index("</figure>")]
    assert chart.count('<rect class="col') == 2
    assert 'data-source-total="5"' in chart and 'data-source-total="2"' in chart
    assert "from github" in chart


def test_unreachable_connectors_are_named_with_the_fix(client: TestClient) -> None:
    html = client.get("/overview", headers=BEARER).text
    assert 'id="connectors-unreachable"' in html
    assert "Connectors not reachable at" in html and "linked-artifacts up" in html


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the http.server API
        return


@pytest.fixture
def connectors_metrics() -> Iterator[str]:
    """The connectors' real metrics registry with some rejects, served over loopback."""
    metrics = ConnectorMetrics()
    metrics.rejects.labels(endpoint="/webhooks/github", reason="auth", code="bad_signature").inc(3)
    metrics.rejects.labels(endpoint="/events/scans", reason="input", code="invalid_json").inc(2)
    metrics.rejects.labels(endpoint="/webhooks/artifactory", reason="auth", code="bad_signature").inc(1)
    _Metrics.body = metrics.render()[0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_rejects_by_reason_come_from_the_connectors_counters(
    database: Warehouse, triage: Triage, client_for: Callable[..., TestClient], connectors_metrics: str
) -> None:
    client = client_for(database, connectors_metrics_url=connectors_metrics)
    html = client.get("/overview", headers=BEARER).text
    assert bars(html, "rejects") == {"auth": 4, "input": 2}
    assert "invalid_json" in html and "/webhooks/github" in html


def test_reject_counters_parse_from_the_prometheus_text() -> None:
    metrics = ConnectorMetrics()
    metrics.rejects.labels(endpoint="/e", reason="size", code="too_large").inc(7)
    [count] = parse_rejects(metrics.render()[0].decode())
    assert (count.endpoint, count.reason, count.code, count.requests) == ("/e", "size", "too_large", 7)


async def test_a_failing_metrics_endpoint_becomes_an_error_not_an_exception() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500))
    async with httpx.AsyncClient(transport=transport) as http:
        rejects = await fetch_rejects("http://connectors/metrics", client=http)
    assert rejects.counts == () and rejects.error is not None and "500" in rejects.error
