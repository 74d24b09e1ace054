"""Fixtures: one chDB engine per test session, a migrated database per purpose.

chDB hosts one engine (one data path) per process and clickhouse-connect gives each client its own
handle to it, so every fixture here opens handles on the session's one ``clickhouse_dsn``. Applying the
migrations costs about a second, so the schema is applied once per database and tests start from emptied
tables instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from history.client import Warehouse

_DSN = {"dsn": ""}


@pytest.fixture(scope="session", autouse=True)
def _session_dsn(clickhouse_dsn: str) -> None:
    _DSN["dsn"] = clickhouse_dsn


# Runs on several machines may share one ClickHouse server (LINKED_ARTIFACTS_TEST_CLICKHOUSE), where a
# process id alone can repeat: every database of this run carries this random part too.
_RUN = uuid.uuid4().hex[:8]


def open_database(name: str) -> Warehouse:
    """A freshly migrated database named ``name`` plus this run's random part (see ``Warehouse.database``)."""
    name = f"{name}_{_RUN}"
    warehouse = Warehouse.connect(_DSN["dsn"], database=name)
    warehouse.command(f"DROP DATABASE IF EXISTS {name}")
    warehouse.close()
    warehouse = Warehouse.connect(_DSN["dsn"], database=name)
    warehouse.apply_migrations()
    return warehouse


def empty_tables(warehouse: Warehouse) -> None:
    tables = warehouse.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree' "
        "AND name != 'schema_migrations'",
        {"db": warehouse.database},
    ).result_rows
    for (name,) in tables:
        warehouse.command(f"TRUNCATE TABLE {name}")


@pytest.fixture(scope="session")
def shared_database() -> Iterator[Warehouse]:
    warehouse = open_database(f"la_unit_{os.getpid()}")
    yield warehouse
    warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
    warehouse.close()


@pytest.fixture
def warehouse(shared_database: Warehouse) -> Iterator[Warehouse]:
    """A migrated database with empty tables, as a fresh session."""
    empty_tables(shared_database)
    session = shared_database.session()
    yield session
    session.close()
