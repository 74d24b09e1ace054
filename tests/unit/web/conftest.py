"""Fixtures: the query API with the web pages mounted, over a migrated chDB database per test module.

chDB holds one data path per process, so every database lives on the session's ``clickhouse_dsn``;
modules isolate themselves by database name.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from history.client import Warehouse
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings
from pipeline.query_api import create_query_api
from tests.conftest import free_port
from web import mount_web
from web.attestations import AttestationSource

TOKEN = "test-query-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def open_database(dsn: str, label: str) -> Warehouse:
    name = f"web_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    warehouse = Warehouse.connect(dsn, database=name)
    warehouse.apply_migrations()
    return warehouse


def insert(warehouse: Warehouse, events: Sequence[ArtifactEvent]) -> None:
    insert_events(warehouse, list(events), dedup_token=f"web-test:{uuid.uuid4()}")


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    # The connectors port is a free one nothing listens on: the overview must say they are unreachable.
    values: dict[str, Any] = {"data_dir": data_dir, "query_token": TOKEN, "connectors_port": free_port()}
    values.update(overrides)
    return Settings(**values)


def build_app(
    warehouse: Warehouse,
    settings: Settings,
    *,
    attestations: AttestationSource | None = None,
    connectors_metrics_url: str | None = None,
) -> FastAPI:
    """The query API with the pages mounted, as the worker builds it (one warehouse session per thread)."""
    api = create_query_api(settings, warehouse=warehouse)
    local = threading.local()

    def session() -> Warehouse:
        if not hasattr(local, "warehouse"):
            local.warehouse = warehouse.session()
        found: Warehouse = local.warehouse
        return found

    mount_web(api, settings, warehouse_session=session, attestations=attestations,
              connectors_metrics_url=connectors_metrics_url)
    return api


@pytest.fixture(scope="module")
def database(clickhouse_dsn: str, request: pytest.FixtureRequest) -> Iterator[Warehouse]:
    """A migrated database of this test module's own."""
    warehouse = open_database(clickhouse_dsn, request.module.__name__.rsplit(".", 1)[-1])
    yield warehouse
    warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
    warehouse.close()


@pytest.fixture
def client_for(tmp_path: Path) -> Callable[..., TestClient]:
    def make(warehouse: Warehouse, **kwargs: Any) -> TestClient:
        settings_overrides = kwargs.pop("settings", {})
        assert isinstance(settings_overrides, dict)
        settings = make_settings(tmp_path, **settings_overrides)
        return TestClient(build_app(warehouse, settings, **kwargs))

    return make
