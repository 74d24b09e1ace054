"""The services' garbage-collector tuning: applied, visible on /metrics, and undone here after each test."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from linked_artifacts import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_tuning_raises_the_thresholds_and_freezes_start_up_objects(restored_gc: None) -> None:
    gc_tuning.tune_for_service()
    assert gc.get_threshold() == gc_tuning.THRESHOLDS
    assert gc.get_freeze_count() > 0
    # Cyclic garbage is still collected, only in rarer sweeps.
    assert gc.isenabled()


def test_threshold_gauge_shows_the_thresholds_in_effect(restored_gc: None) -> None:
    registry = CollectorRegistry()
    gc_tuning.register_threshold_gauge(registry)
    gc.set_threshold(1234, 5, 6)
    text = generate_latest(registry).decode()
    assert 'la_gc_threshold{generation="0"} 1234.0' in text
    assert 'la_gc_threshold{generation="2"} 6.0' in text


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_batch_collects_nothing_and_freezes_what_it_left(restored_gc: None) -> None:
    gc.enable()
    collections = gc_tuning.BatchCollections(interval=3600)
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with collections.batch():
            assert not gc.isenabled()
            kept = [[n] for n in range(200_000)]  # past every threshold
            garbage = weakref.ref(_Cycle())
    finally:
        gc.callbacks.remove(count)
    assert seen == []
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)
    assert garbage() is not None  # cyclic garbage is frozen too, until a full collection
    assert collections.full_collections == 0


def test_a_full_collection_after_the_interval_frees_frozen_cyclic_garbage(restored_gc: None) -> None:
    now = [0.0]
    collections = gc_tuning.BatchCollections(interval=120, clock=lambda: now[0])
    with collections.batch():
        garbage = weakref.ref(_Cycle())
    assert garbage() is not None
    now[0] = 119.0
    with collections.batch():
        pass
    assert garbage() is not None and collections.full_collections == 0
    now[0] = 120.0
    with collections.batch():
        kept = _Cycle()
    assert garbage() is None
    assert collections.full_collections == 1 and collections.freed >= 1
    assert kept.me is kept  # live objects stay, frozen again
    assert gc.get_freeze_count() > 0


def test_a_batch_leaves_a_disabled_collector_disabled(restored_gc: None) -> None:
    gc.disable()
    try:
        with gc_tuning.BatchCollections().batch():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_batch_collections_are_on_metrics(restored_gc: None) -> None:
    registry = CollectorRegistry()
    collections = gc_tuning.BatchCollections(interval=0)
    with collections.batch():
        pass
    collections.register(registry)
    text = generate_latest(registry).decode()
    assert "la_gc_batches_frozen_total 1.0" in text
    assert "la_gc_batch_full_collections_total 1.0" in text
    assert f"la_gc_full_collection_kept_objects {float(collections.kept)}" in text and collections.kept > 0
    assert "la_gc_full_collection_seconds " in text
