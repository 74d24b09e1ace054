"""The linker's decoded states, bounded.

The table holds every state as bytes; merging needs them decoded. Keeping every decoded state would grow
the worker without bound (a state decodes to hundreds of Python objects), and every object kept makes the
periodic full garbage collection longer (``linked_artifacts.gc_tuning``). So the least recently used
states beyond ``limit`` are dropped, and decoded again from the table when needed.

Dropping happens only in :meth:`trim`, which the linker calls after a batch's states are in the table: a
state changed by the batch is newer than the table until then, and must not be read from it.
"""

from __future__ import annotations

from pipeline.state import LinkedArtifactState


class StateCache:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a state cache holds at least one state")
        self.limit = limit
        # Insertion order is recency: a hit moves its key to the end, so the front is the least recent.
        self._states: dict[str, LinkedArtifactState] = {}
        self.evicted = 0

    def get(self, key: str) -> LinkedArtifactState | None:
        state = self._states.pop(key, None)
        if state is not None:
            self._states[key] = state
        return state

    def remember(self, key: str, state: LinkedArtifactState) -> None:
        self._states.pop(key, None)
        self._states[key] = state

    def trim(self) -> int:
        """Drop the least recently used states beyond the limit; how many were dropped."""
        excess = len(self._states) - self.limit
        if excess <= 0:
            return 0
        for key in list(self._states)[:excess]:
            del self._states[key]
        self.evicted += excess
        return excess

    def clear(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: object) -> bool:
        return key in self._states
