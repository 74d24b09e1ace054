"""Every value from the data renders as text: a webhook that carries <script> shows <script>, runs nothing.

The events come in as any source token holder could send them: markup in names, tags, clusters,
deployment names, alert titles and packages, and a javascript: URL where a link is expected."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from history.client import Warehouse
from linked_artifacts.events import ArtifactEvent
from tests.unit.history.builders import digest
from web.render import ENVIRONMENT

from .conftest import BEARER, insert

SCRIPT = "<script>alert('xss')</script>"
IMG = '"><img src=x onerror=alert(1)>'
DIGEST = digest("hostile")
NOW = datetime.now(UTC).replace(microsecond=0)


def _event(n: int, kind: str, body: dict[str, object], *, key: str = DIGEST) -> ArtifactEvent:
    return ArtifactEvent.model_validate({
        "event_id": f"hostile-{n}", "key": key, "kind": kind, "source": "demo",
        "digest": None if key.startswith("repo:") else DIGEST,
        "event_time": NOW - timedelta(hours=3 - n), "ingest_time": NOW - timedelta(minutes=5),
        "delivery_id": f"d-{n}", kind: body,
    })


def hostile_events() -> list[ArtifactEvent]:
    return [
        _event(0, "storage", {"registry": "jfrog-artifactory", "registry_url": "https://acme.jfrog.io/",
                              "repository": f"docker{SCRIPT}", "path": f"p/{IMG}", "name": f"evil{SCRIPT}",
                              "artifact_url": "javascript:alert(document.cookie)", "tags": [SCRIPT, IMG],
                              "action": "pushed"}),
        _event(1, "build", {"repository": f"acme/{SCRIPT}", "workflow_run_id": 7, "commit": "c0ffee",
                            "builder_id": IMG, "attestation_sha256": "ab" * 32,
                            "run_url": "javascript:alert(1)"}),
        _event(2, "deployment", {"logical_environment": f"prod{SCRIPT}", "cluster": f"aks{IMG}",
                                 "deployment_name": f"api{SCRIPT}", "status": "deployed",
                                 "runtime_risks": ["internet-exposed"], "risks_asserted_by": SCRIPT,
                                 "namespace": IMG, "workload": SCRIPT}),
        _event(3, "alert", {"alert_key": f"trivy:{SCRIPT}", "scope": "digest", "vulnerability_id": f"CVE-{SCRIPT}",
                            "severity": "critical", "cvss_score": 9.8, "epss": 0.5, "state": "open",
                            "tool": "trivy", "package_name": IMG, "title": SCRIPT, "fixed_version": SCRIPT,
                            "url": "javascript:alert(2)"}),
    ]


@pytest.fixture(scope="module")
def hostile(database: Warehouse) -> Iterator[None]:
    insert(database, hostile_events())
    yield


@pytest.fixture
def client(database: Warehouse, hostile: None, client_for: Callable[..., TestClient]) -> TestClient:
    return client_for(database)


def assert_inert(text: str) -> None:
    assert "<script>alert" not in text
    assert "<img src=x" not in text
    assert 'href="javascript:' not in text.lower()
    assert str(escape(SCRIPT)) in text


@pytest.mark.parametrize(
    "path",
    [
        "/artifacts",
        f"/artifacts/{DIGEST}",
        "/triage",
        "/overview",
        "/web/live/artifacts",
        f"/web/live/artifacts/{DIGEST}",
        "/web/live/triage",
    ],
)
def test_markup_from_events_renders_as_text(client: TestClient, path: str) -> None:
    response = client.get(path, headers=BEARER)
    assert response.status_code == 200, response.text[:500]
    text = response.json()["html"] if path.startswith("/web/live") else response.text
    if "overview" not in path:
        assert_inert(text)
    else:
        assert "<script>alert" not in text


def test_the_escaped_text_is_shown_where_the_value_belongs(client: TestClient) -> None:
    page = client.get(f"/artifacts/{DIGEST}", headers=BEARER).text
    assert f'<span class="tag">{escape(SCRIPT)}</span>' in page
    assert escape(f"api{SCRIPT}") in page


def test_a_javascript_url_is_shown_as_text_not_a_link(client: TestClient) -> None:
    page = client.get(f"/artifacts/{DIGEST}", headers=BEARER).text
    assert 'href="javascript' not in page.lower()
    triage = client.get("/triage", headers=BEARER).text
    assert 'href="javascript' not in triage.lower()
    assert escape(f"CVE-{SCRIPT}") in triage


def test_a_filter_chip_made_from_hostile_data_stays_text(client: TestClient) -> None:
    # The environment and registry chips come from the data.
    page = client.get("/triage", headers=BEARER).text
    assert escape(f"prod{SCRIPT}".lower()) in page
    assert "<script>alert" not in page


def test_a_hostile_query_is_echoed_as_text(client: TestClient) -> None:
    response = client.get("/artifacts", params={"q": f"repo:{SCRIPT}", "find": IMG}, headers=BEARER)
    assert response.status_code == 400  # the parenthesis ends the value: the parser's message echoes it
    assert "That filter cannot be used" in response.text
    assert "<script>alert" not in response.text and "<img src=x" not in response.text


def test_csv_cells_that_look_like_formulas_are_neutralised(
    database: Warehouse, client_for: Callable[..., TestClient]
) -> None:
    insert(database, [_event(9, "alert", {"alert_key": "k-formula", "scope": "digest",
                                          "vulnerability_id": "=HYPERLINK(\"http://evil\")", "severity": "low",
                                          "state": "open", "tool": "trivy", "package_name": "+cmd|' /C calc'!A0"})])
    client = client_for(database)
    text = client.get("/triage.csv", headers=BEARER).text
    assert "'=HYPERLINK" in text and "'+cmd" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text


def test_every_template_is_autoescaped_whatever_its_name() -> None:
    for name in ENVIRONMENT.list_templates():
        rendered = ENVIRONMENT.from_string("{{ v }}").render(v=SCRIPT)
        assert rendered == str(escape(SCRIPT)), name
    assert ENVIRONMENT.autoescape is True
