"""The ClickHouse warehouse: open a client (server or embedded chDB), apply migrations, run calls.

One client library, clickhouse-connect, serves both modes. ``Settings.clickhouse_dsn`` is either a server
URL (``http://user:pass@host:8123``) or ``chdb:///abs/path`` for the embedded engine; the database is
``Settings.clickhouse_database`` in both.

Lifecycle::

    warehouse = Warehouse.open(settings)   # creates the database, applies migrations, sets the history TTL
    ...                                    # insert_events(warehouse, ...), linked_view(warehouse, ...), ...
    warehouse.close()

Every method blocks (chDB runs in this process). Inside asyncio, call them through
``asyncio.to_thread``. One ``Warehouse`` serialises its calls on chDB (the client holds one engine handle
with a lock); give a second thread its own session with :meth:`Warehouse.session`.

chDB allows one engine path per process, and one process per data directory: whatever writes and
whatever queries the embedded warehouse must live in the same process (see design.md).

Migrations are the ``history/migrations/NNNN_name.sql`` files, applied in order at start-up and
recorded in ``schema_migrations``. They are forward only: an applied file must never change (its
checksum is checked) and a database migrated by newer code is refused rather than guessed at. Every
statement is idempotent (``IF NOT EXISTS``), so a crash half-way through a file is repaired by the
next start.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from clickhouse_connect.driver.query import QueryResult

from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# The parameter every point-in-time view takes (migration 0003).
AS_OF_PARAMETER = "{as_of:DateTime64(6, 'UTC')}"


def relation(name: str, as_of: datetime | None) -> str:
    """The current-state view ``{name}_current``, or ``{name}_at`` at ``as_of`` (bind ``as_of``).

    ``name`` is one of our fixed view names, never user input.
    """
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a view name: {name!r}")
    return f"{name}_current" if as_of is None else f"{name}_at(as_of = {AS_OF_PARAMETER})"


def as_of_parameters(as_of: datetime | None) -> dict[str, Any]:
    """The parameter :func:`relation` needs: none for the current views, ``as_of`` otherwise."""
    return {} if as_of is None else {"as_of": as_of}


class WarehouseError(LinkedArtifactsError):
    """ClickHouse refused or failed a call we made. Usually transient (server down, too many parts)."""

    code = "warehouse_error"
    retriable = True


class MigrationError(LinkedArtifactsError):
    """The schema cannot be brought to this code's version. Needs a person: never retried."""

    code = "migration_error"


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file."""

    version: int
    name: str
    checksum: str
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    """A row of ``schema_migrations``."""

    version: int
    name: str
    checksum: str


def split_statements(sql: str) -> list[str]:
    """Split a migration file at top-level semicolons, ignoring those in strings, quoted identifiers and
    comments. ClickHouse takes one statement per request, on the HTTP interface and on chDB alike."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = _end_of_quoted(sql, i)
            current.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            statements.append("".join(current))
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def _end_of_quoted(sql: str, start: int) -> int:
    quote = sql[start]
    i = start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
            continue
        if sql[i] == quote:
            return i + 1
        i += 1
    raise MigrationError(f"unterminated {quote} quote in migration SQL at offset {start}")


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file, in version order. Versions must run 1, 2, 3, ... without gaps."""
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        text = path.read_text(encoding="utf-8")
        migrations.append(
            Migration(
                version=int(match.group(1)),
                name=match.group(2),
                checksum=hashlib.sha256(text.encode()).hexdigest(),
                statements=tuple(split_statements(text)),
            )
        )
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"migration versions must be contiguous: expected {expected:04d}, "
                f"found {migration.version:04d}_{migration.name}"
            )
    return migrations


def quote_identifier(name: str) -> str:
    """A database or table name we put into DDL. Only plain identifiers are accepted."""
    if not _IDENTIFIER.match(name):
        raise LinkedArtifactsError(
            f"{name!r} is not a valid ClickHouse identifier (letters, digits, _)", field="clickhouse_database"
        )
    return f"`{name}`"


def _connect(dsn: str, *, database: str | None, settings: Mapping[str, Any] | None = None) -> Client:
    # tz_mode="aware": every DateTime64('UTC') comes back as an aware UTC datetime on both backends.
    try:
        return clickhouse_connect.get_client(dsn=dsn, database=database, settings=dict(settings or {}), tz_mode="aware")
    except ClickHouseError as ex:
        raise WarehouseError(f"cannot open ClickHouse at {_redact(dsn)}: {ex}") from ex


def _correctness_settings(client: Client) -> dict[str, str]:
    """Session settings every query of ours runs with, where the server knows them.

    ``use_query_condition_cache = 0``: ClickHouse's query condition cache (on by default since 25.3)
    can be poisoned by a query whose filter matched nothing inside a view; later queries with the
    view's predicate then silently return no rows (ClickHouse issues 110302 and 111363). Reproduced
    here on chDB 26.9 with the as-of views: about 1 query in 400 of the alert property test returned
    nothing; with the cache off, none in 1,500. The cache only saves time on repeated selective
    filters, which our reads answer by sort key anyway.
    """
    wanted = {"use_query_condition_cache": "0"}
    try:
        rows = client.query(
            "SELECT name FROM system.settings WHERE name IN {names:Array(String)}", parameters={"names": list(wanted)}
        ).result_rows
    except ClickHouseError as ex:
        raise WarehouseError(f"cannot read system.settings: {ex}") from ex
    known = {str(row[0]) for row in rows}
    return {name: value for name, value in wanted.items() if name in known}


# Backslash before each character ClickHouse needs escaped inside a quoted literal: the same rule as
# clickhouse-connect's escape_str (backslash, quote, backquote, tab, newline), by str.translate.
_ESCAPES: Final = str.maketrans({c: "\\" + c for c in ("\\", "'", "`", "\t", "\n")})
# Below this many elements clickhouse-connect's own formatting costs nothing worth saving.
_FAST_ARRAY_MIN: Final = 32


class StringArray:
    """A list of strings bound as an ``Array(String)`` parameter, formatted in one pass.

    clickhouse-connect formats a bound list element by element and each string character by character
    (a generator per character): a 16,000-digest parameter costs ~0.5 s of Python on this machine. This
    gives the same text (``['a', 'b\\'c']``) by str.translate. clickhouse-connect binds an object it does not
    know by ``str(value)``, on the HTTP and chDB backends alike.
    """

    __slots__ = ("_text",)

    def __init__(self, values: Sequence[str]) -> None:
        self._text = "[" + ", ".join("'" + v.translate(_ESCAPES) + "'" for v in values) + "]"

    def __str__(self) -> str:
        return self._text


def _bindable(parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not parameters:
        return None
    out = dict(parameters)
    for name, value in out.items():
        if isinstance(value, list) and len(value) >= _FAST_ARRAY_MIN and all(isinstance(v, str) for v in value):
            out[name] = StringArray(value)
    return out


def _redact(dsn: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", dsn)


class Warehouse:
    """A ClickHouse session bound to the project database."""

    def __init__(self, client: Client, *, dsn: str, database: str) -> None:
        self._client = client
        self.dsn = dsn
        self.database = database
        self._materialized_cte: bool | None = None
        self._session_settings = _correctness_settings(client)
        for key, value in self._session_settings.items():
            client.set_client_setting(key, value)

    # --- opening -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings, *, migrate: bool = True) -> Warehouse:
        """Open the warehouse the settings name; with ``migrate`` also apply migrations and the TTL."""
        warehouse = cls.connect(settings.clickhouse_dsn, database=settings.clickhouse_database)
        if migrate:
            try:
                warehouse.apply_migrations()
                warehouse.apply_history_ttl(settings.history_ttl_days)
            except BaseException:
                warehouse.close()
                raise
        return warehouse

    @classmethod
    def connect(cls, dsn: str, *, database: str) -> Warehouse:
        """Open a session on ``dsn``, creating ``database`` if it does not exist. Applies nothing."""
        quoted = quote_identifier(database)
        bootstrap = _connect(dsn, database=None)
        try:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {quoted}")
        except ClickHouseError as ex:
            bootstrap.close()
            raise WarehouseError(f"cannot create database {database}: {ex}") from ex
        bootstrap.database = database
        return cls(bootstrap, dsn=dsn, database=database)

    def session(self) -> Warehouse:
        """Another session on the same database (on chDB: another handle to the same engine)."""
        client = _connect(self.dsn, database=self.database, settings=self._session_settings)
        return Warehouse(client, dsn=self.dsn, database=self.database)

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def materialized_cte(self) -> bool:
        """Whether this ClickHouse runs ``WITH x AS MATERIALIZED (...)`` once (25.x+, chDB 26.x)."""
        if self._materialized_cte is None:
            result = self.query("SELECT count() FROM system.settings WHERE name = 'enable_materialized_cte'")
            self._materialized_cte = bool(result.result_rows[0][0])
        return self._materialized_cte

    @property
    def client(self) -> Client:
        """The underlying clickhouse-connect client, for callers that need its full API."""
        return self._client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls ---------------------------------------------------------------------------------------
    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a SELECT. Values go in ``parameters`` and are bound server-side ({name:Type})."""
        try:
            return self._client.query(sql, parameters=_bindable(parameters))
        except ClickHouseError as ex:
            raise WarehouseError(str(ex)) from ex

    def rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as dicts keyed by column name."""
        result = self.query(sql, parameters)
        names = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    @contextmanager
    def stream(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Iterator[Iterator[Sequence[Any]]]:
        """Stream a large SELECT: yields an iterator over its rows, read block by block (exports)."""
        try:
            with self._client.query_rows_stream(sql, parameters=dict(parameters) if parameters else None) as rows:
                yield rows
        except ClickHouseError as ex:
            raise WarehouseError(str(ex)) from ex

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing useful (DDL, ALTER)."""
        try:
            self._client.command(sql, parameters=dict(parameters) if parameters else None)
        except ClickHouseError as ex:
            raise WarehouseError(str(ex)) from ex

    def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        *,
        column_names: Sequence[str],
        column_type_names: Sequence[str],
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Insert rows. Passing the column types saves clickhouse-connect a DESCRIBE per insert."""
        try:
            self._client.insert(
                table,
                rows,
                column_names=list(column_names),
                column_type_names=list(column_type_names),
                settings=dict(settings or {}),
            )
        except ClickHouseError as ex:
            raise WarehouseError(str(ex)) from ex

    def readonly_client(self, settings: Mapping[str, Any]) -> Client:
        """A new session whose settings are applied in order and then frozen by ``readonly = 1``.

        ``readonly`` is applied last: once it is 1 the session can change no setting at all (checked on
        chDB 26.9: ``SET``, a ``SETTINGS`` clause and ``readonly = 0`` are all refused), so the limits
        set before it hold for every query. The caller closes the client.
        """
        ordered = {**self._session_settings, **{k: v for k, v in settings.items() if k != "readonly"}}
        ordered["readonly"] = 1
        return _connect(self.dsn, database=self.database, settings=ordered)

    # --- schema --------------------------------------------------------------------------------------
    def applied_migrations(self) -> list[AppliedMigration]:
        self._ensure_migrations_table()
        result = self.query("SELECT version, name, checksum FROM schema_migrations ORDER BY version LIMIT 1 BY version")
        return [AppliedMigration(int(v), str(n), str(c)) for v, n, c in result.result_rows]

    def apply_migrations(self, migrations: Sequence[Migration] | None = None) -> list[int]:
        """Apply every migration not yet recorded; return the versions applied now (empty when current)."""
        known = list(migrations) if migrations is not None else load_migrations()
        applied = {m.version: m for m in self.applied_migrations()}
        by_version = {m.version: m for m in known}
        for version, record in applied.items():
            migration = by_version.get(version)
            if migration is None:
                raise MigrationError(
                    f"database {self.database} has migration {version:04d}_{record.name}, which this code "
                    "does not know: it was migrated by a newer release. Migrations are forward only; "
                    "run the newer release."
                )
            if migration.checksum != record.checksum:
                raise MigrationError(
                    f"migration {version:04d}_{migration.name} changed after it was applied. Applied "
                    "migrations must never change; put the change in a new migration file."
                )
        done: list[int] = []
        for migration in known:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                try:
                    self._client.command(statement)
                except ClickHouseError as ex:
                    raise MigrationError(f"migration {migration.version:04d}_{migration.name} failed: {ex}") from ex
            self.insert(
                "schema_migrations",
                [[migration.version, migration.name, migration.checksum]],
                column_names=("version", "name", "checksum"),
                column_type_names=("UInt32", "String", "String"),
            )
            done.append(migration.version)
        return done

    def apply_history_ttl(self, days: int | None) -> None:
        """Make the event history expire after ``days`` (by event time), or keep it all when None.

        The TTL is a setting, not a migration: it changes with ``history_ttl_days`` and is applied at
        start-up only when it differs from the table's. Current-state tables keep their state.
        """
        if days is not None and (not isinstance(days, int) or days <= 0):
            raise LinkedArtifactsError(
                "history_ttl_days must be a positive whole number of days", field="history_ttl_days"
            )
        result = self.query(
            "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = 'events'",
            {"db": self.database},
        )
        engine_full = str(result.result_rows[0][0]) if result.result_rows else ""
        has_ttl = " TTL " in engine_full
        if days is None:
            if has_ttl:
                self.command("ALTER TABLE events REMOVE TTL")
            return
        if f"toIntervalDay({days})" not in engine_full:
            # days is a validated positive int: DDL cannot take bound parameters.
            self.command(f"ALTER TABLE events MODIFY TTL toDateTime(event_time) + toIntervalDay({days})")

    def _ensure_migrations_table(self) -> None:
        self.command(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version UInt32, name String, checksum String, "
            "applied_at DateTime64(6, 'UTC') DEFAULT now64(6, 'UTC')) "
            "ENGINE = MergeTree ORDER BY version"
        )
