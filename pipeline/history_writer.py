"""The sink's seam onto ClickHouse: the event history table of ``history``."""

from __future__ import annotations

from collections.abc import Sequence

from history.client import Warehouse
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent


class WarehouseWriter:
    """Implements ``pipeline.sink.HistoryWriter`` on its own session, so sink inserts never share a
    connection with query threads."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse.session()

    def known_event_ids(self, keys: Sequence[str], event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        # The key filter uses the primary index (ORDER BY key, ...), so this reads a few granules.
        result = self.warehouse.query(
            "SELECT DISTINCT event_id FROM events WHERE key IN {keys:Array(String)} "
            "AND event_id IN {ids:Array(String)}",
            {"keys": list(keys), "ids": list(event_ids)},
        )
        return {row[0] for row in result.result_rows}

    def write(self, events: Sequence[ArtifactEvent], *, dedup_token: str) -> None:
        insert_events(self.warehouse, events, dedup_token=dedup_token)
