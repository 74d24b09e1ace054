from __future__ import annotations

import pytest

from pipeline.state import LinkedArtifactState, empty_state
from pipeline.state_cache import StateCache


def state(key: str) -> LinkedArtifactState:
    return empty_state(key)


def test_holds_more_than_its_limit_until_trimmed_then_drops_the_least_recently_used() -> None:
    cache = StateCache(2)
    for key in ("a", "b", "c"):
        cache.remember(key, state(key))
    # A batch may touch more keys than the limit: nothing is dropped before its states are in the table.
    assert len(cache) == 3
    assert cache.get("a") is not None  # "a" is now the most recently used
    assert cache.trim() == 1
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    assert cache.evicted == 1


def test_remembering_a_key_again_replaces_its_state_and_makes_it_recent() -> None:
    cache = StateCache(2)
    first, second = state("a"), empty_state("a").model_copy(update={"version": 7})
    cache.remember("a", first)
    cache.remember("b", state("b"))
    cache.remember("a", second)
    cache.remember("c", state("c"))
    cache.trim()
    assert cache.get("a") is second
    assert cache.get("b") is None


def test_a_miss_is_none_and_clear_empties_it() -> None:
    cache = StateCache(1)
    assert cache.get("x") is None
    cache.remember("x", state("x"))
    cache.clear()
    assert len(cache) == 0 and cache.trim() == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        StateCache(0)
