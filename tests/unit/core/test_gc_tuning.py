"""The services' garbage-collector tuning: applied, visible on /metrics, and undone here after each test."""

from __future__ import annotations

import gc
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
