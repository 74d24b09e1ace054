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
"""

from __future__ import annotations

import functools
import gc
import logging
from typing import Final

from prometheus_client import CollectorRegistry, Gauge

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
