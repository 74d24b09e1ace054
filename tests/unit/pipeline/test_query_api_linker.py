"""The worker's query API when its linker process does not answer: it says so, and never hangs or hides it."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from linked_artifacts.settings import Settings
from pipeline.query_api import create_query_api
from tests.conftest import free_port

TOKEN = "linker-test-token"  # noqa: S105 - a test token, never served


def _api(tmp_path: Path) -> TestClient:
    settings = Settings(data_dir=tmp_path, query_token=TOKEN)
    # Nothing listens on this port: the linker process is gone (or not started yet).
    return TestClient(create_query_api(settings, warehouse=None, linker_url=f"http://127.0.0.1:{free_port()}"))


def test_metrics_report_the_linker_down_and_still_answer(tmp_path: Path) -> None:
    response = _api(tmp_path).get("/metrics")
    assert response.status_code == 200
    assert "\nla_worker_linker_up 0.0\n" in response.text
    assert "process_cpu_seconds_total" in response.text  # this process's own metrics are all there
    assert "la_worker_records_processed" not in response.text


def test_state_lookups_get_a_503_that_says_where_to_look(tmp_path: Path) -> None:
    api = _api(tmp_path)
    assert api.get("/v1/state/sha256:" + "a" * 64).status_code == 401  # the token is checked here first
    response = api.get("/v1/state/sha256:" + "a" * 64, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert "the linker process did not answer" in response.json()["detail"]
    assert "this worker's log" in response.json()["detail"]


def test_readiness_names_the_linker(tmp_path: Path) -> None:
    response = _api(tmp_path).get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert list(checks) == ["linker"] and checks["linker"].startswith("unavailable: ")
