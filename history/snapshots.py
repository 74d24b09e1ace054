"""Snapshots of whole-history answers under a change stamp over every event (migrations 0006 and 0007).

Some reads aggregate every artifact or every alert: the artifacts summary behind the web pages' list and
overview, and the ranked alert context behind the alert search. On chDB most of their time is planning the
query, and on a large history reading it too, so a writer (the ClickHouse sink, after its inserts) stores the
answer as a snapshot, and readers use a snapshot only while its change stamp equals the current one. The
stamp (``event_change_state``) changes with every inserted event, so a stale or missing snapshot costs
time, never a wrong answer. Point-in-time (as-of) reads never use one: a late event can change the past.

A snapshot table holds one partition per refresh (``generation``). Its rows are the answer; a last row whose
``marker`` column is ``''`` marks the generation complete, so a reader never sees a half-written one. Old
generations are dropped a partition at a time (cheap, no mutation) once ``KEEP_SUPERSEDED_S`` old, so a reader
that picked one a moment ago still finds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from history.client import Warehouse

_STAMP: Final = "SELECT sum(rows), sum(hash) FROM event_change_state"
# A generation other than the newest complete one is dropped once it is this old.
KEEP_SUPERSEDED_S: Final = 120.0


@dataclass(frozen=True)
class StampedSnapshot:
    """A snapshot table: its name, the answer's columns, the key column whose ``''`` marks a generation
    complete, and the SELECT that computes the answer now (its output columns named as ``columns``), with the
    settings it needs. ``marker_where`` finds the marker row (by the table's sort key, so it reads one
    granule); by default ``marker = ''``."""

    table: str
    columns: tuple[str, ...]
    marker: str
    compute: str
    settings: str = ""
    marker_where: str = ""

    @property
    def _marked(self) -> str:
        return self.marker_where or f"{self.marker} = ''"

    def rows_sql(self, parameter: str = "snapshot_generation") -> str:
        """A SELECT of one generation's answer rows; binds ``parameter`` (UInt64) to the generation."""
        return (
            f"SELECT {', '.join(self.columns)} FROM {self.table} "  # noqa: S608 - fixed names
            f"WHERE generation = {{{parameter}:UInt64}} AND {self.marker} != ''"
        )

    def current_generation(self, warehouse: Warehouse) -> int | None:
        """The complete generation taken under the current change stamp, if there is one (one round trip)."""
        generation, found = warehouse.query(
            f"SELECT max(generation), count() FROM {self.table} WHERE {self._marked} "  # noqa: S608
            "AND (change_rows, change_hash) = (SELECT sum(rows), sum(hash) FROM event_change_state)"
        ).result_rows[0]
        return int(generation) if found else None

    def _generation_at(self, warehouse: Warehouse, stamp: tuple[int, int]) -> int | None:
        generation, found = warehouse.query(
            f"SELECT max(generation), count() FROM {self.table} WHERE {self._marked} "  # noqa: S608
            "AND change_rows = {rows:UInt64} AND change_hash = {hash:UInt64}",
            {"rows": stamp[0], "hash": stamp[1]},
        ).result_rows[0]
        return int(generation) if found else None

    def refresh(self, warehouse: Warehouse) -> bool:
        """Write a generation if any event arrived since the newest one; True if it did.

        The stamp is read before and after computing: a batch that lands in between leaves the generation
        without its marker row (the next call writes a new one), so a marked generation never claims a stamp
        it has not seen. Superseded generations are dropped here too.
        """
        before = _stamp(warehouse)
        if self._generation_at(warehouse, before) is not None:
            return False
        # Microseconds since the epoch: unique per refresh, and a newer refresh has a larger one.
        generation = time.time_ns() // 1_000
        stamp: dict[str, Any] = {"generation": generation, "rows": before[0], "hash": before[1]}
        columns = ", ".join(self.columns)
        warehouse.command(
            f"INSERT INTO {self.table} (generation, change_rows, change_hash, {columns})\n"
            f"SELECT {{generation:UInt64}}, {{rows:UInt64}}, {{hash:UInt64}}, {columns} FROM ({self.compute})"
            + (f"\nSETTINGS {self.settings}" if self.settings else ""),
            stamp,
        )
        written = _stamp(warehouse) == before
        if written:
            warehouse.command(
                f"INSERT INTO {self.table} (generation, change_rows, change_hash, {self.marker}) "
                "VALUES ({generation:UInt64}, {rows:UInt64}, {hash:UInt64}, '')",
                stamp,
            )
        self._drop_superseded(warehouse, newest=generation if written else None)
        return written

    def _drop_superseded(self, warehouse: Warehouse, *, newest: int | None) -> None:
        """Drop every generation but the newest complete one once it is ``KEEP_SUPERSEDED_S`` old.

        Age alone decides, not completeness: with several sinks on one ClickHouse server, a newer unmarked
        generation may be another sink's refresh still being written.
        """
        if newest is None:
            latest, found = warehouse.query(
                f"SELECT max(generation), count() FROM {self.table} WHERE {self._marked}"  # noqa: S608
            ).result_rows[0]
            newest = int(latest) if found else None
        old_before = (time.time() - KEEP_SUPERSEDED_S) * 1_000_000
        partitions = warehouse.query(
            "SELECT DISTINCT toUInt64(partition) FROM system.parts "
            "WHERE database = currentDatabase() AND table = {table:String} AND active",
            {"table": self.table},
        ).result_rows
        for (value,) in partitions:
            generation = int(value)
            if generation != newest and generation < old_before:
                # A literal: ClickHouse binds no parameter in a partition expression; the value is an int.
                warehouse.command(f"ALTER TABLE {self.table} DROP PARTITION {generation:d}")


def _stamp(warehouse: Warehouse) -> tuple[int, int]:
    rows, digest = warehouse.query(_STAMP).result_rows[0]
    return int(rows or 0), int(digest or 0)
