"""Large Array(String) parameters are formatted in one pass, to the same text clickhouse-connect makes."""

from __future__ import annotations

from clickhouse_connect.driver.binding import format_bind_value

from history.client import StringArray, Warehouse

HOSTILE = ["plain", "it's", "back\\slash", "tab\there", "new\nline", "back`quote", "üñí€", "", "') OR 1 --", "\\'"]


def test_formatting_matches_clickhouse_connect() -> None:
    values = HOSTILE * 5
    assert str(StringArray(values)) == format_bind_value(values)


def test_a_large_array_parameter_round_trips_unchanged(warehouse: Warehouse) -> None:
    values = [f"{text}-{i}" for i in range(40) for text in HOSTILE]
    [(echoed,)] = warehouse.query("SELECT {xs:Array(String)}", {"xs": values}).result_rows
    assert list(echoed) == values
    [(count,)] = warehouse.query("SELECT length({xs:Array(String)})", {"xs": values}).result_rows
    assert count == len(values)
