"""Property-based proof that the merge is order-free: a join-semilattice, across every key of the system."""

from __future__ import annotations

import io
import random
from itertools import pairwise

import fastavro
from hypothesis import given, settings
from hypothesis import strategies as st

from linked_artifacts import avro_schema
from linked_artifacts.events import ArtifactEvent, slot_key
from pipeline.derive import derived_from, linked_view
from pipeline.merge import event_delta, join, join_all, merge
from pipeline.state import (
    ALERT_RANK,
    BUILD_RANK,
    DEPLOYMENT_RANK,
    STORAGE_RANK,
    LinkedArtifactState,
    changed,
    empty_state,
    state_fingerprint,
)
from tests.unit.pipeline.factory import fold, run_system
from tests.unit.pipeline.strategies import histories, scenarios

# Modest budgets: the system property replays whole histories several times per example (2-core CI).
SYSTEM = settings(max_examples=120, deadline=None)
SINGLE = settings(max_examples=200, deadline=None)


def _by_key(events: list[ArtifactEvent]) -> dict[str, list[ArtifactEvent]]:
    out: dict[str, list[ArtifactEvent]] = {}
    for event in events:
        out.setdefault(event.key, []).append(event)
    return out


@SYSTEM
@given(events=scenarios(), seeds=st.lists(st.integers(min_value=0, max_value=2**32), min_size=2, max_size=2))
def test_any_order_with_redeliveries_gives_identical_states_for_every_key(
    events: list[ArtifactEvent], seeds: list[int]
) -> None:
    reference = run_system(events)
    for seed in seeds:
        shuffled = run_system(events, random.Random(seed))
        assert shuffled.keys() == reference.keys()
        for key, state in reference.items():
            assert shuffled[key] == state, key
            # Canonical down to the byte: dict and list order too, not only value equality.
            assert shuffled[key].model_dump_json() == state.model_dump_json()
            assert state_fingerprint(shuffled[key]) == state_fingerprint(state)
            assert linked_view(shuffled[key]) == linked_view(state)


@SYSTEM
@given(events=scenarios(), seed=st.integers(min_value=0, max_value=2**32))
def test_version_is_order_independent_and_counts_contributions(
    events: list[ArtifactEvent], seed: int
) -> None:
    reference = run_system(events)
    shuffled = run_system(events, random.Random(seed))
    for key, state in reference.items():
        assert shuffled[key].version == state.version
        assert state.version == len(state.event_ids) + sum(d.origin_version for d in state.inherited)
        assert state.event_ids == sorted({e.event_id for e in events if e.key == key})


@SINGLE
@given(events=histories(max_size=16), seed=st.integers(min_value=0, max_value=2**32))
def test_one_key_folds_to_the_same_state_in_any_order_with_duplicates(
    events: list[ArtifactEvent], seed: int
) -> None:
    rng = random.Random(seed)
    for key, own in _by_key(events).items():
        shuffled = own + rng.sample(own, k=rng.randint(0, len(own)))  # redeliveries
        rng.shuffle(shuffled)
        assert fold(empty_state(key), shuffled) == fold(empty_state(key), own)


@SINGLE
@given(events=histories(max_size=16))
def test_merge_is_idempotent(events: list[ArtifactEvent]) -> None:
    for key, own in _by_key(events).items():
        state = fold(empty_state(key), own)
        for event in own:
            again = merge(state, event)
            assert again == state
            assert again.model_dump_json() == state.model_dump_json()
            assert not changed(state, again)
            assert derived_from(state, again) == []


@SINGLE
@given(events=histories(min_size=3, max_size=12), seed=st.integers(min_value=0, max_value=2**32))
def test_join_is_commutative_associative_and_idempotent(events: list[ArtifactEvent], seed: int) -> None:
    rng = random.Random(seed)
    for key, own in _by_key(events).items():
        deltas = [event_delta(event) for event in own]
        # Three states made of arbitrary (overlapping) parts of the history.
        a, b, c = (fold(empty_state(key), rng.sample(own, k=rng.randint(0, len(own)))) for _ in range(3))
        assert join(a, b) == join(b, a)
        assert join(join(a, b), c) == join(a, join(b, c))
        assert join(a, a) == a
        for left, right in pairwise(deltas):
            assert join(left, right) == join(right, left)


@SINGLE
@given(events=histories(min_size=2, max_size=16), seed=st.integers(min_value=0, max_value=2**32))
def test_joining_many_deltas_at_once_equals_joining_them_one_by_one(events: list[ArtifactEvent], seed: int) -> None:
    # How a batch folds a key (pipeline.processor): its deltas pooled into one join with the stored state.
    rng = random.Random(seed)
    for key, own in _by_key(events).items():
        stored = fold(empty_state(key), rng.sample(own, k=rng.randint(0, len(own))))
        deltas = [event_delta(event) for event in rng.sample(own, k=len(own))]
        deltas += [event_delta(event) for event in rng.sample(own, k=rng.randint(0, len(own)))]  # redeliveries
        one_by_one = stored
        for delta in deltas:
            one_by_one = join(one_by_one, delta)
        assert join_all(stored, deltas) == one_by_one
        assert join_all(stored, deltas).model_dump_json() == one_by_one.model_dump_json()


@SYSTEM
@given(events=scenarios())
def test_every_state_is_its_own_events_joined_with_the_final_messages_it_kept(events: list[ArtifactEvent]) -> None:
    # The derived messages too: pooled with the events, in one join, they give every key's final state.
    for key, state in run_system(events).items():
        own = [event_delta(event) for event in events if event.key == key]
        kept = [
            LinkedArtifactState(key=key, inherited=[message], version=message.origin_version)
            for message in state.inherited
        ]
        if own or kept:
            assert join_all(empty_state(key), own + kept) == state, key


@SINGLE
@given(events=histories(min_size=2, max_size=16), seed=st.integers(min_value=0, max_value=2**32))
def test_late_older_event_never_overwrites_newer(events: list[ArtifactEvent], seed: int) -> None:
    rng = random.Random(seed)
    for key, own in _by_key(events).items():
        # Newest first: every later arrival is older than what the state already holds.
        arrival = sorted(own, key=lambda e: e.event_time, reverse=True)
        rng.shuffle(arrival[: len(arrival) // 2])
        state = fold(empty_state(key), arrival)
        _assert_registers_hold_the_latest(state, own)


def _assert_registers_hold_the_latest(state: LinkedArtifactState, events: list[ArtifactEvent]) -> None:
    """An oracle independent of the merge: each record's status is the one of its max (time, rank, id)."""
    for alert in state.alerts:
        ranked = [
            ((e.event_time, ALERT_RANK[e.alert.state], e.event_id), e.alert)
            for e in events
            if e.alert is not None and e.alert.alert_key == alert.alert_key
        ]
        assert alert.state == max(ranked)[1].state
        scored = [item for item in ranked if item[1].cvss_score is not None]
        if scored:
            assert alert.cvss_score == max(scored)[1].cvss_score
    for record in state.deployments:
        changes = [
            ((e.event_time, DEPLOYMENT_RANK[d.status], e.event_id), d.status)
            for e in events
            if (d := e.deployment) is not None
            and slot_key(d.logical_environment, d.physical_environment, d.cluster, d.deployment_name)
            == record.slot
        ]
        assert record.status == max(changes)[1]
    for build in state.builds:
        statuses = [
            ((e.event_time, BUILD_RANK.get(e.build.status, 0), e.event_id), e.build.status)
            for e in events
            if e.build is not None and e.build.status is not None
        ]
        if build.build_key.startswith("gh-run:") and statuses:
            assert build.status == max(statuses)[1]
    for location in state.storage:
        touched = []
        for e in events:
            body = e.storage
            if body is None:
                continue
            path = body.path or ""
            if (body.repository, path) == (location.repository, location.path):
                touched.append(((e.event_time, STORAGE_RANK[body.status], e.event_id), body.status))
            moved = body.previous_repository is not None and body.action != "copied"
            if moved and (body.previous_repository, path) == (location.repository, location.path):
                touched.append(((e.event_time, STORAGE_RANK["deleted"], e.event_id), "deleted"))
        assert location.status == max(touched)[1]


@settings(max_examples=60, deadline=None)
@given(events=scenarios())
def test_every_reached_state_round_trips_through_avro(events: list[ArtifactEvent]) -> None:
    schema = fastavro.parse_schema(avro_schema.generate(LinkedArtifactState))
    for state in run_system(events).values():
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schema, state.model_dump())
        buffer.seek(0)
        assert LinkedArtifactState.model_validate(fastavro.schemaless_reader(buffer, schema, schema)) == state
