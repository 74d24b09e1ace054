"""The events of one artifact family, read once for the linked view.

The linked view needs four things from the history table: the storage events of the family's digests (tag
timelines), the first deployment event of each slot (first seen), the first event and the body of each alert
on the page, and the latest events of the family with their bodies (recent history). Each was its own read of
``events`` by key, ~18-26 ms apiece at 10M history rows, most of it fixed cost (index analysis of every part,
decompressing a granule of wide columns). Here one read takes every event of the family's keys without
bodies, and a second the bodies of just the events shown: about half the time, with the same answers
(tests/unit/history/test_linked_view_reads.py holds both ways to each other).

A family with more events than ``MAX_FAMILY_EVENTS`` (an artifact re-observed endlessly) is not read this way:
:meth:`FamilyEvents.read` returns None and the linked view falls back to its narrower, limited reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from history.client import Warehouse

MAX_FAMILY_EVENTS: Final = 10_000
# Reads up to ``until`` (the as-of time), or to the end of time.
UNTIL: Final = "ifNull({until:Nullable(DateTime64(6, 'UTC'))}, toDateTime64('2299-12-31 00:00:00', 6, 'UTC'))"

_EVENTS: Final = f"""
SELECT event_id, key, kind, source, digest, event_time, ingest_time, delivery_id,
    storage_registry_url, storage_repository, storage_path, storage_vacated_repository, storage_vacated_path,
    storage_tags, deployment_logical_environment, deployment_physical_environment, deployment_cluster,
    deployment_name, alert_key
FROM events WHERE key IN {{keys:Array(String)}} AND event_time <= {UNTIL}
LIMIT {{n:UInt32}}
"""  # noqa: S608 - fixed SQL text; every value is a bound parameter
_BODIES: Final = (
    "SELECT event_id, any(body) FROM events WHERE key IN {keys:Array(String)} AND event_id IN {ids:Array(String)} "
    "GROUP BY event_id"
)
_SLOT_COLUMNS: Final = (
    "digest", "deployment_logical_environment", "deployment_physical_environment", "deployment_cluster",
    "deployment_name",
)


def _unique(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first row of each event id (a redelivered event can sit twice in a part not yet merged)."""
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["event_id"] not in seen:
            seen.add(row["event_id"])
            out.append(row)
    return out


class FamilyEvents:
    """Every event (without body) of a family's keys up to a time, and the bodies of those shown."""

    def __init__(self, rows: list[dict[str, Any]], *, digests: Sequence[str], keys: Sequence[str]) -> None:
        self.keys = list(keys)
        self._digests = set(digests)
        self._oldest_first = sorted(rows, key=lambda r: (r["event_time"], r["event_id"]))
        self._bodies: dict[str, str] = {}

    @classmethod
    def read(
        cls, warehouse: Warehouse, *, digests: Sequence[str], keys: Sequence[str], as_of: datetime | None
    ) -> FamilyEvents | None:
        """The family's events (``keys``: its digests, and its repository and workflow-run keys), or None
        when there are more than ``MAX_FAMILY_EVENTS``."""
        rows = warehouse.rows(_EVENTS, {"keys": list(keys), "until": as_of, "n": MAX_FAMILY_EVENTS + 1})
        if len(rows) > MAX_FAMILY_EVENTS:
            return None
        return cls(rows, digests=digests, keys=keys)

    def storage_history(self, limit: int) -> list[dict[str, Any]]:
        """The storage events of the family's digests, oldest first, at most ``limit``."""
        rows = (r for r in self._oldest_first if r["kind"] == "storage" and r["key"] in self._digests)
        return _unique(rows)[:limit]

    def first_seen_in_slots(self) -> dict[tuple[str, ...], datetime]:
        """Per (digest, slot): the time of the first deployment event of a family digest there."""
        first: dict[tuple[str, ...], datetime] = {}
        for row in self._oldest_first:
            if row["kind"] == "deployment" and row["key"] in self._digests:
                first.setdefault(tuple(str(row[c]) for c in _SLOT_COLUMNS), row["event_time"])
        return first

    def latest(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` events of every key, newest first (ties by event id, descending)."""
        return _unique(reversed(self._oldest_first))[:limit]

    def bodies(self, warehouse: Warehouse, event_ids: Iterable[str]) -> dict[str, str]:
        """The bodies of these events (read once; later calls reuse what was read)."""
        wanted = sorted(set(event_ids) - self._bodies.keys())
        if wanted:
            found = warehouse.query(_BODIES, {"keys": self.keys, "ids": wanted}).result_rows
            self._bodies.update({str(event_id): str(body) for event_id, body in found})
        return {i: self._bodies.get(i, "") for i in event_ids}

    def alert_details(
        self, warehouse: Warehouse, rows: Sequence[Mapping[str, Any]], *, also: Iterable[str] = ()
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """What ``history.alerts`` reads for a page of alerts: each alert's first event time and the body of
        its current event. ``also`` names more event ids whose bodies are read in the same query."""
        if not rows:
            return {}
        first_seen: dict[tuple[str, str], datetime] = {}
        for event in self._oldest_first:
            if event["kind"] == "alert":
                first_seen.setdefault((event["key"], event["alert_key"]), event["event_time"])
        bodies = self.bodies(warehouse, [*(str(r["event_id"]) for r in rows), *also])
        return {
            (str(r["subject"]), str(r["alert_key"])): {
                "first_seen": first_seen.get((str(r["subject"]), str(r["alert_key"]))),
                "body": json.loads(bodies.get(str(r["event_id"])) or "{}"),
            }
            for r in rows
        }
