"""The sink's seam onto ClickHouse: the event history table of ``history``."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from history.alerts import refresh_alert_context_snapshot
from history.artifact_summary import refresh_summary_snapshot
from history.client import Warehouse
from history.deployed import refresh_deployed_now
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent

log = logging.getLogger(__name__)


# The snapshots (deployed-now and the alert context for the alert search, the artifacts summary for the
# pages) are refreshed at most this often. A snapshot left stale by the limit only costs its readers their
# fast path until the sink next writes or idles.
SNAPSHOT_REFRESH_EVERY_S = 5.0
# ... and the sink spends at most about 1/SNAPSHOT_COST_SHARE of its time refreshing: on a large history
# (the summary takes seconds at 10M rows) the interval grows with what the last refresh cost.
SNAPSHOT_COST_SHARE = 10.0
# Each snapshot: its refresh, and who computes the answer while it is stale.
SNAPSHOTS: dict[str, tuple[Callable[[Warehouse], bool], str]] = {
    "deployed_now": (refresh_deployed_now, "alert searches"),
    "artifact_summary": (refresh_summary_snapshot, "the web pages"),
    "alert_context": (refresh_alert_context_snapshot, "alert searches"),
}


def refresh_snapshots(warehouse: Warehouse) -> dict[str, float]:
    """Refresh every snapshot as the sink does after its inserts (benchmarks, tools): the seconds each
    refresh that wrote a snapshot took, by name."""
    took: dict[str, float] = {}
    for name, (refresh, _) in SNAPSHOTS.items():
        started = time.monotonic()
        if refresh(warehouse):
            took[name] = time.monotonic() - started
    return took


class WarehouseWriter:
    """Implements ``pipeline.sink.HistoryWriter`` on its own session, so sink inserts never share a
    connection with query threads."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        refresh_every: float = SNAPSHOT_REFRESH_EVERY_S,
        cost_share: float = SNAPSHOT_COST_SHARE,
    ) -> None:
        self.warehouse = warehouse.session()
        self.refresh_every = refresh_every
        self.cost_share = cost_share
        self._next_refresh = float("-inf")
        # Per snapshot: how many were written, and what the last refresh took (for /metrics).
        self.refreshes: dict[str, int] = dict.fromkeys(SNAPSHOTS, 0)
        self.refresh_seconds: dict[str, float] = dict.fromkeys(SNAPSHOTS, 0.0)
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
        started = time.monotonic()
        if started < self._next_refresh:
            return
        self._unsettled = False
        for name, (refresh, readers) in SNAPSHOTS.items():
            began = time.monotonic()
            try:
                # Returns at once when no event the snapshot depends on changed its stamp since the last one.
                if refresh(self.warehouse):
                    self.refreshes[name] += 1
                    self.refresh_seconds[name] = time.monotonic() - began
            except Exception:  # the insert succeeded; a failed refresh only leaves readers on their slow path
                log.warning("refreshing the %s snapshot failed; %s compute it meanwhile", name, readers,
                            exc_info=True)
        # Counted from the end, so the sink writes for at least the interval between refreshes.
        ended = time.monotonic()
        self._next_refresh = ended + max(self.refresh_every, self.cost_share * (ended - started))
