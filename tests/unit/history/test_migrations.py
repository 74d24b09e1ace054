"""Migrations: applied once, in order, forward only; the event columns match the table."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from history.client import MigrationError, Warehouse, load_migrations, split_statements
from history.rows import EVENT_COLUMNS

from .conftest import open_database

REPO = Path(__file__).resolve().parents[3]


def test_split_statements_ignores_semicolons_in_strings_comments_and_identifiers() -> None:
    sql = """
    -- a comment; with a semicolon
    CREATE TABLE a (x String DEFAULT 'x;y') ENGINE = Memory;
    /* block; comment */ SELECT `we;ird`, "q;uoted", 'it\\'s;' ;
    ;
    """
    statements = split_statements(sql)
    assert statements == [
        "CREATE TABLE a (x String DEFAULT 'x;y') ENGINE = Memory",
        "SELECT `we;ird`, \"q;uoted\", 'it\\'s;'",
    ]


def test_migration_files_are_contiguous_and_named() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.statements for m in migrations)


def test_gap_in_migration_versions_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="contiguous"):
        load_migrations(tmp_path)


@pytest.fixture(scope="module")
def fresh() -> Iterator[Warehouse]:
    warehouse = open_database(f"la_migrations_{os.getpid()}")
    yield warehouse
    warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
    warehouse.close()


def test_migrations_apply_once_and_a_second_run_changes_nothing(fresh: Warehouse) -> None:
    versions = [m.version for m in load_migrations()]
    assert [m.version for m in fresh.applied_migrations()] == versions
    before = fresh.query("SELECT count() FROM system.tables WHERE database = {db:String}", {"db": fresh.database})
    assert fresh.apply_migrations() == []
    after = fresh.query("SELECT count() FROM system.tables WHERE database = {db:String}", {"db": fresh.database})
    assert before.result_rows == after.result_rows
    assert fresh.query("SELECT count() FROM schema_migrations").result_rows[0][0] == len(versions)


def test_every_statement_is_idempotent_so_a_half_applied_migration_is_repaired(fresh: Warehouse) -> None:
    # A crash between a migration's statements and its record: running them again must succeed.
    for migration in load_migrations():
        for statement in migration.statements:
            fresh.command(statement)


def test_an_applied_migration_that_changed_is_refused(fresh: Warehouse) -> None:
    migrations = load_migrations()
    changed = [replace(migrations[0], checksum="0" * 64), *migrations[1:]]
    with pytest.raises(MigrationError, match="changed after it was applied"):
        fresh.apply_migrations(changed)


def test_a_database_migrated_by_a_newer_release_is_refused(fresh: Warehouse) -> None:
    migrations = load_migrations()
    with pytest.raises(MigrationError, match="newer release"):
        fresh.apply_migrations(migrations[:-1])


def test_event_columns_written_by_rows_match_the_events_table(fresh: Warehouse) -> None:
    described = fresh.query("DESCRIBE TABLE events").result_rows
    stored = [(name, kind) for name, kind, default_kind, *_ in described if default_kind != "MATERIALIZED"]
    assert stored == list(EVENT_COLUMNS)


def test_history_ttl_follows_the_setting(fresh: Warehouse) -> None:
    def engine() -> str:
        return str(
            fresh.query(
                "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'events'",
                {"db": fresh.database},
            ).result_rows[0][0]
        )

    fresh.apply_history_ttl(30)
    assert "toIntervalDay(30)" in engine()
    fresh.apply_history_ttl(30)  # unchanged: no ALTER
    fresh.apply_history_ttl(None)
    assert " TTL " not in engine()
    with pytest.raises(Exception, match="positive"):
        fresh.apply_history_ttl(0)


def test_file_backed_chdb_keeps_its_schema_across_restarts(tmp_path: Path) -> None:
    # A separate process: chDB hosts one engine path per process, and this one serves chdb://memory.
    script = textwrap.dedent(
        f"""
        from history.client import Warehouse
        for attempt in range(2):
            w = Warehouse.connect("chdb://{tmp_path / "ch"}", database="la")
            print(w.apply_migrations())
            w.close()
        """
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == str([m.version for m in load_migrations()])
    assert lines[1] == "[]"


def test_every_session_runs_with_the_query_condition_cache_off(fresh: Warehouse) -> None:
    # ClickHouse's query condition cache can be poisoned so that later reads of a view return no rows;
    # the alert property test caught it on chDB 26.9. Every session we open, read-only ones too, turns it off.
    query = "SELECT value FROM system.settings WHERE name = 'use_query_condition_cache'"
    session = fresh.session()
    readonly = fresh.readonly_client({"max_result_rows": 10})
    try:
        for result in (fresh.query(query), session.query(query), readonly.query(query)):
            assert result.result_rows in ([("0",)], [])
    finally:
        session.close()
        readonly.close()
