"""An empty history and a broken warehouse: every page says what to do next."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from history.client import Warehouse, WarehouseError
from pipeline.query_api import create_query_api
from web import mount_web

from .conftest import BEARER, make_settings


@pytest.mark.parametrize("path", ["/artifacts", "/triage", "/overview"])
def test_an_empty_history_says_run_the_demo(database: Warehouse, client_for: Callable[..., TestClient],
                                           path: str) -> None:
    response = client_for(database).get(path, headers=BEARER)
    assert response.status_code == 200
    assert "No data yet" in response.text and "linked-artifacts demo" in response.text


class _Broken(Warehouse):
    def query(self, sql: str, parameters: object = None) -> object:  # type: ignore[override]
        raise WarehouseError("Code: 210. Connection refused (127.0.0.1:8123)")


def test_a_warehouse_failure_is_a_503_that_names_the_fix(database: Warehouse, tmp_path: Path) -> None:
    # Every read through this session fails as a ClickHouse server that went away does.
    broken = _Broken(database.client, dsn=database.dsn, database=database.database)
    client = TestClient(_with_session(database, tmp_path, lambda: broken))
    response = client.get("/artifacts", headers=BEARER)
    assert response.status_code == 503
    assert "ClickHouse did not answer" in response.text and "worker" in response.text
    assert client.get("/web/pulse", headers=BEARER).status_code == 503


def test_a_worker_without_clickhouse_says_how_to_start_it(database: Warehouse, tmp_path: Path) -> None:
    def no_sink() -> Warehouse:
        raise HTTPException(503, "this worker runs without ClickHouse (started with --no-sink)")

    response = TestClient(_with_session(database, tmp_path, no_sink)).get("/triage", headers=BEARER)
    assert response.status_code == 503
    assert "--no-sink" in response.text and "Start the worker without --no-sink" in response.text


def _with_session(database: Warehouse, tmp_path: Path, session: Callable[[], Warehouse]) -> FastAPI:
    settings = make_settings(tmp_path)
    api = create_query_api(settings, warehouse=database)
    mount_web(api, settings, warehouse_session=session)
    return api
