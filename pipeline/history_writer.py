"""The sink's seam onto ClickHouse: the event history table of ``history``."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from history.client import Warehouse
from history.deployed import refresh_deployed_now
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent

log = logging.getLogger(__name__)


# The deployed-now snapshot costs ~1 s to recompute on a 10M-row history: at most that often. A snapshot
# left stale by the limit only costs the alert search its fast path until the sink next writes or idles.
DEPLOYED_REFRESH_EVERY_S = 5.0


class WarehouseWriter:
    """Implements ``pipeline.sink.HistoryWriter`` on its own session, so sink inserts never share a
    connection with query threads."""

    def __init__(self, warehouse: Warehouse, *, refresh_every: float = DEPLOYED_REFRESH_EVERY_S) -> None:
        self.warehouse = warehouse.session()
        self.refresh_every = refresh_every
        self._last_refresh = float("-inf")
        self.refreshes = 0
        self._unsettled = False  # a write since the last refresh

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
        self._unsettled = True
        self._settle()

    def idle(self) -> None:
        """The sink found nothing to write: the refresh a write deferred (within the interval) happens now,
        so a quiet system after a burst does not leave the search on its slow path until the next event."""
        if self._unsettled:
            self._settle()

    def _settle(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh < self.refresh_every:
            return
        self._last_refresh = now
        self._unsettled = False
        try:
            # Returns at once when no deployment or link event changed the stamp since the last snapshot.
            if refresh_deployed_now(self.warehouse):
                self.refreshes += 1
        except Exception:  # the insert succeeded; a failed refresh only leaves the search on its slow path
            log.warning("refreshing the deployed-now snapshot failed; the alert search computes it", exc_info=True)
