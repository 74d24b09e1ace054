"""How large the linker's states grow, seen before they reach the most a state may have.

A key's state only grows. It keeps the id of every event merged into it (that is what makes a redelivery
change nothing, and what its ``version`` counts), and a deployment keeps every status it was reported in:
89 bytes of the record per deployment event (measured with 32-character event ids). At
``settings.worker_state_max_bytes`` (8 MiB less 64 KiB, under the most a Kafka record may carry: ~94,000
deployment events on one digest, or ~30,000 alerts) the key is frozen (``pipeline.worker.Linker``): it keeps
its last state and takes nothing more. A key that a source reports without end gets there (a runtime monitor
re-sending a digest's deployment every five minutes from 20 clusters: ~5,800 events a day, 16 days), so the
linker says so long before: once per key and process when its state passes ``WARN_BYTES``, and in
``/metrics`` (the largest state written, and its key).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# A megabyte, about an eighth of the limit: Kafka's own default record limit, and room for ~8x the growth.
WARN_BYTES = 1024 * 1024


class StateSizes:
    """The sizes of the states the linker writes: the largest so far, and the keys it warned about."""

    def __init__(self, *, limit: int, warn_bytes: int = WARN_BYTES) -> None:
        self.warn_bytes = warn_bytes
        self.limit = limit
        self.largest_key = ""
        self.largest_bytes = 0
        self.warned: set[str] = set()

    def written(self, key: str, size: int) -> None:
        if size > self.largest_bytes:
            self.largest_key, self.largest_bytes = key, size
        if size >= self.warn_bytes and key not in self.warned:
            self.warned.add(key)
            log.warning(
                "the state of %s is %s bytes, %.0f%% of the %s bytes a state may have here "
                "(worker_state_max_bytes). A state only grows (it keeps the id of every event merged into it, "
                "and every status of its deployments); at the limit the key takes nothing more, and its events "
                "go to the dead-letter topic. Look at what keeps sending events for this key (SELECT source, "
                "kind, count() FROM events WHERE key = '%s' GROUP BY ALL)",
                key,
                f"{size:,}",
                100 * size / self.limit,
                f"{self.limit:,}",
                key,
            )
