"""Read-only SQL for analysts, enforced by ClickHouse itself, with result-size and time limits.

Each query runs in a fresh session whose settings are applied in this order and then frozen:

1. ``max_result_rows`` (= max_rows + 1, to detect truncation) with ``result_overflow_mode = 'break'``,
   ``max_result_bytes``, ``max_execution_time`` with ``timeout_overflow_mode = 'throw'``;
2. ``readonly = 1``, last.

Why readonly = 1 and not 2 (checked on chDB 26.9 through clickhouse-connect): with 1, the session can
change no setting at all, so a query cannot lift its own limits (``SETTINGS max_result_rows = 0`` and
``SET readonly = 0`` are refused), and every write, DDL, ``SYSTEM`` statement and table function that
reaches outside (``file``, ``url``) is refused. readonly = 2 would let a query raise its own limits,
and on chDB it cannot even be set in a query's SETTINGS clause. The SQL text is never inspected or
rewritten here: ClickHouse refuses, we only report.

In server mode the same settings travel with each request; a ClickHouse user whose profile is
readonly is the stronger setup for a shared server (point ``clickhouse_url`` of the query service at it).
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final, Literal
from uuid import UUID

from clickhouse_connect.driver.exceptions import ClickHouseError

from history.client import Warehouse, WarehouseError
from linked_artifacts.errors import LinkedArtifactsError

DEFAULT_MAX_ROWS: Final = 10_000
DEFAULT_MAX_SECONDS: Final = 10.0
# Hard ceilings whatever the caller asks for: one analyst query must not take the worker's memory or
# stall the sink for long (on chDB they share one process).
MAX_ROWS_CEILING: Final = 1_000_000
MAX_SECONDS_CEILING: Final = 300.0
MAX_RESULT_BYTES: Final = 256 * 1024 * 1024
MAX_SQL_CHARS: Final = 100_000

OutputFormat = Literal["table", "csv", "jsonl", "json"]

# ClickHouse error codes we explain rather than pass through.
_READONLY = 164
_TIMEOUT = 159
_TOO_MANY_ROWS_OR_BYTES = 396


class SqlError(LinkedArtifactsError):
    """ClickHouse refused or failed the analyst's query; the message is ClickHouse's."""

    code = "sql_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="sql", status=400)


class SqlReadOnlyError(SqlError):
    """The query tried to write, change a setting or reach outside: the SQL API is read-only."""

    code = "sql_readonly"


class SqlTimeoutError(SqlError):
    """The query ran longer than its time limit."""

    code = "sql_timeout"


@dataclass(frozen=True, slots=True)
class SqlResult:
    """Columns, their ClickHouse types, the rows, and whether rows were cut at ``max_rows``."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for the HTTP API."""
        return {
            "columns": list(self.columns),
            "types": list(self.types),
            "rows": [[jsonable(v) for v in row] for row in self.rows],
            "row_count": len(self.rows),
            "truncated": self.truncated,
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


def _bounded(name: str, value: float, ceiling: float) -> None:
    if not (value > 0 and value <= ceiling) or math.isnan(value):
        raise LinkedArtifactsError(f"{name} must be greater than 0 and at most {ceiling:g}", field=name, status=400)


def run_readonly_sql(
    warehouse: Warehouse,
    sql: str,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    parameters: Mapping[str, Any] | None = None,
) -> SqlResult:
    """Run one analyst query read-only with limits. Raises :class:`SqlReadOnlyError` for anything that
    would change state, :class:`SqlTimeoutError` past ``max_seconds``, :class:`SqlError` otherwise.

    ``parameters`` fill the query's ``{name:Type}`` placeholders; ClickHouse binds them server-side, so a
    value is never read as SQL."""
    _bounded("max_rows", max_rows, MAX_ROWS_CEILING)
    _bounded("max_seconds", max_seconds, MAX_SECONDS_CEILING)
    if not sql.strip():
        raise SqlError("the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        raise SqlError(f"the query is longer than {MAX_SQL_CHARS} characters")
    started = time.monotonic()
    try:
        client = warehouse.readonly_client(
            {
                "max_result_rows": max_rows + 1,
                "result_overflow_mode": "break",
                "max_result_bytes": MAX_RESULT_BYTES,
                "max_execution_time": max_seconds,
                "timeout_overflow_mode": "throw",
            }
        )
    except WarehouseError as ex:
        raise SqlError(f"cannot open a read-only session: {ex}") from ex
    try:
        result = client.query(sql, parameters=dict(parameters) if parameters else None)
    except ClickHouseError as ex:
        raise _explain(ex) from ex
    finally:
        client.close()
    rows = tuple(tuple(row) for row in result.result_rows)
    return SqlResult(
        columns=tuple(result.column_names),
        types=tuple(t.name for t in result.column_types),
        rows=rows[:max_rows],
        truncated=len(rows) > max_rows,
        elapsed_ms=(time.monotonic() - started) * 1000,
    )


def _explain(ex: ClickHouseError) -> SqlError:
    code = getattr(ex, "code", None)
    message = str(ex).strip()
    if code == _READONLY or "(READONLY)" in message:
        return SqlReadOnlyError(f"the SQL API is read-only: {message}")
    if code == _TIMEOUT or "(TIMEOUT_EXCEEDED)" in message:
        return SqlTimeoutError(f"the query ran past its time limit: {message}")
    if code == _TOO_MANY_ROWS_OR_BYTES:
        return SqlError(f"the result is too large; add a LIMIT or aggregate: {message}")
    return SqlError(message)


# --- output formats -----------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A ClickHouse value as JSON: times as ISO 8601, decimals and big integers as strings (exact)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | IPv4Address | IPv6Address):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return str(value)


def _cell(value: Any) -> str:
    converted = jsonable(value)
    if converted is None:
        return ""
    if isinstance(converted, str):
        return converted
    return json.dumps(converted, ensure_ascii=False)


def format_csv(result: SqlResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_cell(v) for v in row] for row in result.rows)
    return buffer.getvalue()


def format_jsonl(result: SqlResult) -> str:
    return "".join(
        json.dumps(dict(zip(result.columns, (jsonable(v) for v in row), strict=True)), ensure_ascii=False) + "\n"
        for row in result.rows
    )


def format_table(result: SqlResult, *, max_width: int = 60) -> str:
    """An aligned text table for terminals; long cells are cut to ``max_width`` with an ellipsis."""

    def cut(text: str) -> str:
        text = text.replace("\n", "\\n")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    header = [cut(c) for c in result.columns]
    body = [[cut(_cell(v)) for v in row] for row in result.rows]
    widths = [max([len(header[i]), *(len(r[i]) for r in body)]) for i in range(len(header))]
    lines = [_line(header, widths), "  ".join("-" * w for w in widths)]
    lines.extend(_line(row, widths) for row in body)
    footer = f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    footer += ", truncated)" if result.truncated else ")"
    return "\n".join([*lines, footer]) + "\n"


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


def format_result(result: SqlResult, fmt: OutputFormat) -> str:
    if fmt == "table":
        return format_table(result)
    if fmt == "csv":
        return format_csv(result)
    if fmt == "jsonl":
        return format_jsonl(result)
    return json.dumps(result.as_dict(), ensure_ascii=False) + "\n"
