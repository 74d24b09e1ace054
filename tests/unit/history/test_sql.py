"""Analyst SQL: ClickHouse enforces read-only; limits hold; nothing can be written or dropped."""

from __future__ import annotations

import json
import uuid

import pytest

from history.client import Warehouse
from history.rows import insert_events
from history.sql import (
    SqlError,
    SqlReadOnlyError,
    SqlResult,
    SqlTimeoutError,
    format_csv,
    format_jsonl,
    format_result,
    format_table,
    run_readonly_sql,
)
from linked_artifacts.errors import LinkedArtifactsError

from .builders import Triage


@pytest.fixture
def loaded(warehouse: Warehouse) -> Warehouse:
    insert_events(warehouse, Triage().events, dedup_token=f"t:{uuid.uuid4()}")
    return warehouse


def _state(warehouse: Warehouse) -> tuple[object, ...]:
    tables = warehouse.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} ORDER BY name", {"db": warehouse.database}
    ).result_rows
    return (tuple(tables), warehouse.query("SELECT count() FROM events").result_rows[0][0])


def test_select_over_views_returns_columns_types_and_rows(loaded: Warehouse) -> None:
    result = run_readonly_sql(loaded, "SELECT logical_environment, runtime_risks FROM deployments_current")
    assert result.columns == ("logical_environment", "runtime_risks")
    assert result.types == ("LowCardinality(String)", "Array(LowCardinality(String))")
    assert result.rows == (("prod", ["internet-exposed"]),)
    assert not result.truncated


def test_rows_beyond_max_rows_are_cut_and_flagged(loaded: Warehouse) -> None:
    result = run_readonly_sql(loaded, "SELECT number FROM numbers(100000)", max_rows=10)
    assert len(result.rows) == 10
    assert result.truncated


def test_a_query_past_its_time_limit_is_stopped(loaded: Warehouse) -> None:
    with pytest.raises(SqlTimeoutError):
        run_readonly_sql(
            loaded, "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 1", max_seconds=0.5
        )


HOSTILE = [
    "INSERT INTO events (event_id) VALUES ('x')",
    "INSERT INTO events SELECT * FROM events",
    "DROP TABLE events",
    "DROP DATABASE {db}",
    "TRUNCATE TABLE events",
    "CREATE TABLE evil (x UInt8) ENGINE = Memory",
    "CREATE VIEW evil AS SELECT 1",
    "ALTER TABLE events DELETE WHERE 1",
    "ALTER TABLE events DROP COLUMN body",
    "DELETE FROM events WHERE 1",
    "RENAME TABLE events TO gone",
    "OPTIMIZE TABLE events FINAL",
    "SYSTEM STOP MERGES",
    "SYSTEM DROP MARK CACHE",
    "SET readonly = 0",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT number FROM numbers(1000000) SETTINGS max_result_rows = 0",
    "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
    "SELECT 1; DROP TABLE events",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "INSERT INTO FUNCTION file('/tmp/la-evil.txt', 'LineAsString') SELECT 'x'",
    "GRANT ALL ON *.* TO default",
    "KILL QUERY WHERE 1",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_nothing_can_be_written_dropped_or_unlocked(loaded: Warehouse, sql: str) -> None:
    before = _state(loaded)
    with pytest.raises(SqlError):
        result = run_readonly_sql(loaded, sql.format(db=loaded.database), max_rows=10)
        # A statement that ran must not have escaped its limits either.
        assert len(result.rows) <= 10
        raise SqlError("ran without error")
    assert _state(loaded) == before


@pytest.mark.parametrize("sql", ["DROP TABLE events", "SET readonly = 0", "INSERT INTO events (event_id) VALUES ('x')"])
def test_refusals_are_typed_as_read_only(loaded: Warehouse, sql: str) -> None:
    with pytest.raises(SqlReadOnlyError) as raised:
        run_readonly_sql(loaded, sql)
    assert raised.value.code == "sql_readonly"
    assert raised.value.status == 400


def test_the_main_session_is_not_made_read_only(loaded: Warehouse) -> None:
    with pytest.raises(SqlError):
        run_readonly_sql(loaded, "DROP TABLE events")
    loaded.command("CREATE TABLE IF NOT EXISTS scratch (x UInt8) ENGINE = Memory")
    loaded.command("DROP TABLE scratch")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"max_rows": 0}, "max_rows"), ({"max_seconds": -1}, "max_seconds"), ({"max_rows": 10**9}, "max_rows")],
)
def test_limits_are_validated(loaded: Warehouse, kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(LinkedArtifactsError) as raised:
        run_readonly_sql(loaded, "SELECT 1", **kwargs)  # type: ignore[arg-type]
    assert raised.value.field == field


def test_output_formats() -> None:
    result = SqlResult(
        columns=("a", "b"),
        types=("String", "Array(String)"),
        rows=(("x,y", ["p", "q"]), ("z", [])),
        truncated=True,
        elapsed_ms=1.0,
    )
    assert format_csv(result) == 'a,b\n"x,y","[""p"", ""q""]"\nz,[]\n'
    assert [json.loads(line) for line in format_jsonl(result).splitlines()] == [
        {"a": "x,y", "b": ["p", "q"]},
        {"a": "z", "b": []},
    ]
    table = format_table(result)
    assert table.splitlines()[0].split() == ["a", "b"]
    assert table.rstrip().endswith("(2 rows, truncated)")
    assert json.loads(format_result(result, "json"))["truncated"] is True
