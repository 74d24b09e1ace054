"""Garbage-collector settings for the long-running processes (worker, connectors).

CPython runs a young-generation collection every 700 net allocations of container objects. The worker
builds and drops many small pydantic models per event (deltas, derived messages, nested state records)
while it keeps tens of thousands of linked states alive in its cache, so those collections, and the older
generations they promote into, cost it ~30% of its CPU (`bench.worker_cpu --default-gc`: ~1,300 against
~1,800-1,950 events/s of CPU at the thresholds below; the worker's replay in `bench.pipeline_e2e`: 882
against 1,226 events/s, same peak RSS).

Raising the thresholds keeps cyclic garbage collected, only in larger, rarer sweeps: at most ~50,000
young container objects wait for a sweep (a few MB). Reference counting still frees everything acyclic at
once, which is nearly all of what the worker allocates. ``gc.freeze()`` moves what start-up built (modules,
schemas, the app) out of the collector's view for good: those objects live as long as the process.

The worker goes further for its batches (``BatchCollections``): most of what a batch builds survives it (the
new states it keeps), and each survivor was scanned by the young collections and again by a middle one
before it settled in the old generation: ~15% of the worker's CPU (``bench.worker_cpu``: 1.47 of 10.0 s,
two middle collections of ~0.4 s each). Inside a batch nothing is collected; after it, what is left is
frozen, out of every later scan. Cyclic garbage frozen with it (asyncio futures, tracebacks) waits for a
full collection, which runs every five minutes (``worker_gc_full_seconds``) and pauses the worker (~1 s
at a million objects). Not when the frozen objects grew by some share, as CPython does for its old
generation: they grow with the states kept, and a replay then paid a full collection after every batch
(worker_cpu: 12.7/10.9/12.7 s CPU against 9.9/10.0/11.3 without the policy).
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

log = logging.getLogger(__name__)

# (young, middle, old) collection thresholds. 700/10/10 is CPython's default.
THRESHOLDS: Final = (50_000, 20, 100)


def tune_for_service() -> None:
    """Apply :data:`THRESHOLDS` and freeze start-up objects. Call once, after imports and set-up."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    log.info(
        "garbage collector thresholds %s (default %s); %d start-up objects frozen",
        THRESHOLDS,
        before,
        gc.get_freeze_count(),
    )


def register_threshold_gauge(registry: CollectorRegistry) -> None:
    """``la_gc_threshold{generation}`` on ``registry``: shows at a glance whether the tuning is in effect
    (next to prometheus_client's ``python_gc_collections_total``)."""
    gauge = Gauge(
        "la_gc_threshold",
        "The garbage collector's threshold per generation (CPython's default is 700, 10, 10)",
        ["generation"],
        registry=registry,
    )
    for generation in range(3):
        gauge.labels(generation=str(generation)).set_function(functools.partial(_threshold, generation))


def _threshold(generation: int) -> float:
    return float(gc.get_threshold()[generation])


class BatchCollections:
    """No collections inside a batch; its survivors frozen after it; a full collection every ``interval`` s.

    ``batch()`` wraps one batch. The full collection (unfreeze, collect, freeze again) runs after the first
    batch that ends ``interval`` seconds after the last one: frozen cyclic garbage is what the process makes
    in that time.
    """

    def __init__(self, *, interval: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.batches = 0
        self.full_collections = 0
        self.freed = 0  # unreachable objects the full collections found
        self.kept = 0  # frozen objects after the last full collection
        self.full_seconds = 0.0  # what the last full collection took
        self._last = clock()

    @contextmanager
    def batch(self) -> Iterator[None]:
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            gc.freeze()
            self.batches += 1
            if self.due():
                self.collect()
            if enabled:
                gc.enable()

    def due(self) -> bool:
        return self.clock() - self._last >= self.interval

    def collect(self) -> None:
        started = time.perf_counter()
        gc.unfreeze()
        self.freed += gc.collect()
        gc.freeze()
        self.full_collections += 1
        self._last = self.clock()
        # Counted here, not on every /metrics scrape: CPython counts frozen objects by walking their list.
        self.kept = gc.get_freeze_count()
        self.full_seconds = time.perf_counter() - started
        log.debug("full collection between batches: %d objects kept, in %.0f ms", self.kept, self.full_seconds * 1000)

    def register(self, registry: CollectorRegistry) -> None:
        """The policy's counts on ``registry`` (``la_gc_batches_frozen_total`` and the full collections')."""
        Counter(
            "la_gc_batches_frozen",
            "Batches whose survivors were frozen out of the collector's sweeps",
            registry=registry,
        ).inc(self.batches)
        Counter(
            "la_gc_batch_full_collections",
            "Full collections between batches, which free frozen cyclic garbage",
            registry=registry,
        ).inc(self.full_collections)
        Counter(
            "la_gc_full_collection_freed_objects",
            "Unreachable objects the full collections between batches freed: the cyclic garbage batches made",
            registry=registry,
        ).inc(self.freed)
        Gauge(
            "la_gc_full_collection_kept_objects",
            "Objects the last full collection between batches kept (frozen again)",
            registry=registry,
        ).set(self.kept)
        Gauge(
            "la_gc_full_collection_seconds", "What the last full collection between batches took", registry=registry
        ).set(self.full_seconds)
