"""Current-state views: the same answer whatever the arrival order, and the same as the as-of views."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.alerts import context_sql
from history.client import Warehouse
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent

from .builders import Events, at, digest
from .conftest import empty_tables

VIEWS = (
    "storage",
    "deployment_states",
    "deployments",
    "alerts",
    "build_subjects",
    "build_runs",
    "builds",
    "links",
    "digest_roots",
)
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)

_I, _P1, _P2, _X = digest("i"), digest("p1"), digest("p2"), digest("x")
_DIGESTS = [_I, _P1, _P2, _X]
_SLOTS = [("prod", "app"), ("staging", "app")]


@st.composite
def histories(draw: st.DrawFn) -> list[ArtifactEvent]:
    """Small random histories over a few digests, slots and alerts, with many event-time ties."""
    e = Events()
    minute = st.integers(0, 6)
    events: list[ArtifactEvent] = []
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["storage", "deploy", "slot-clear", "alert", "repo-alert", "build", "run", "link"]))
        m = draw(minute)
        if kind == "storage":
            events.append(
                e.storage(
                    draw(st.sampled_from(_DIGESTS)),
                    minute=m,
                    repository=draw(st.sampled_from(["a", "b"])),
                    status=draw(st.sampled_from(["active", "deleted"])),
                    action=draw(st.sampled_from(["pushed", "moved"])),
                    previous_repository="a",
                    tags=draw(st.lists(st.sampled_from(["1", "2", "latest"]), max_size=2)),
                )
            )
        elif kind in ("deploy", "slot-clear"):
            env, name = draw(st.sampled_from(_SLOTS))
            d = None if kind == "slot-clear" else draw(st.sampled_from(_DIGESTS))
            status = "decommissioned" if d is None else draw(st.sampled_from(["deployed", "decommissioned"]))
            events.append(
                e.deploy(
                    d,
                    minute=m,
                    env=env,
                    name=name,
                    status=status,
                    risks=draw(
                        st.lists(st.sampled_from(["internet-exposed", "sensitive-data"]), max_size=2, unique=True)
                    ),
                    asserted_by=draw(st.sampled_from([None, "defender"])),
                )
            )
        elif kind == "alert":
            events.append(
                e.alert(
                    draw(st.sampled_from(_DIGESTS)),
                    minute=m,
                    alert_key=draw(st.sampled_from(["k1", "k2"])),
                    state=draw(st.sampled_from(["open", "fixed", "dismissed"])),
                    severity=draw(st.sampled_from(["critical", "low"])),
                )
            )
        elif kind == "repo-alert":
            events.append(
                e.alert(
                    "", minute=m, repository="acme/app", alert_key="r1", state=draw(st.sampled_from(["open", "fixed"]))
                )
            )
        elif kind == "build":
            events.append(
                e.build(
                    draw(st.sampled_from(_DIGESTS)),
                    minute=m,
                    repository="acme/app",
                    run_id=draw(st.sampled_from([1, 2])),
                )
            )
        elif kind == "run":
            events.append(
                e.run(
                    minute=m,
                    repository="acme/app",
                    run_id=draw(st.sampled_from([1, 2])),
                    status=draw(st.sampled_from(["in_progress", "completed"])),
                )
            )
        else:
            events.append(e.link(_I, draw(st.sampled_from([_P1, _P2])), minute=m))
    return events


def _GENERATED_HISTORIES(test: Callable[..., None]) -> Callable[..., None]:  # noqa: N802 - used as a decorator
    """15 generated histories with a shuffle seed; each is a fresh ClickHouse load, hence no deadline."""
    slow = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
    examples = settings(max_examples=15, deadline=None, suppress_health_check=slow)
    return examples(given(events=histories(), seed=st.integers(0, 1000))(test))


def _snapshot(warehouse: Warehouse, as_of: datetime | None) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for view in VIEWS:
        source = f"{view}_current" if as_of is None else f"{view}_at(as_of = {{as_of:DateTime64(6, 'UTC')}})"
        out[view] = sorted(
            tuple(map(repr, row))
            for row in warehouse.query(f"SELECT * FROM {source}", {"as_of": as_of} if as_of else None).result_rows
        )
    rows = warehouse.query(context_sql(as_of), {"as_of": as_of} if as_of else None).result_rows
    out["alert_context"] = sorted(tuple(map(repr, row)) for row in rows)
    return out


def _load(warehouse: Warehouse, events: list[ArtifactEvent], seed: int) -> None:
    empty_tables(warehouse)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    cut = len(shuffled) // 2
    for batch in (shuffled[:cut], shuffled[cut:]):
        insert_events(warehouse, batch, dedup_token=f"t:{uuid.uuid4()}")


@_GENERATED_HISTORIES
def test_current_state_is_order_free_and_equals_the_as_of_view(
    warehouse: Warehouse, events: list[ArtifactEvent], seed: int
) -> None:
    _load(warehouse, events, seed)
    current = _snapshot(warehouse, None)
    assert _snapshot(warehouse, FAR_FUTURE) == current
    _load(warehouse, list(reversed(events)), seed + 1)
    assert _snapshot(warehouse, None) == current


# deployments_at as 0003 defined it: the states, holders and risks views joined (0005 replaced it with one
# scan; this keeps the old definition as the reference).
_JOINED_DEPLOYMENTS_AT = """
SELECT d.digest, d.logical_environment, d.physical_environment, d.cluster, d.deployment_name,
    r.runtime_risks, r.risks_asserted_by, r.risks_asserted_at, h.deployed_at, d.updated_at, d.body, d.event_id
FROM deployment_states_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS d
INNER JOIN deployment_holders_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS h
    ON h.logical_environment = d.logical_environment AND h.physical_environment = d.physical_environment
    AND h.cluster = d.cluster AND h.deployment_name = d.deployment_name AND h.digest = d.digest
LEFT JOIN deployment_risks_at(as_of = {as_of:DateTime64(6, 'UTC')}) AS r
    ON r.digest = d.digest AND r.logical_environment = d.logical_environment
    AND r.physical_environment = d.physical_environment AND r.cluster = d.cluster
    AND r.deployment_name = d.deployment_name
WHERE d.digest != '' AND d.status = 'deployed'
SETTINGS join_use_nulls = 0
"""


@_GENERATED_HISTORIES
def test_single_scan_deployments_at_equals_the_joined_views_at_every_minute(
    warehouse: Warehouse, events: list[ArtifactEvent], seed: int
) -> None:
    _load(warehouse, events, seed)
    for minute in range(-1, 8):
        parameters = {"as_of": at(minute)}
        single = warehouse.query(
            "SELECT * FROM deployments_at(as_of = {as_of:DateTime64(6, 'UTC')})", parameters
        ).result_rows
        joined = warehouse.query(_JOINED_DEPLOYMENTS_AT, parameters).result_rows
        assert sorted(map(repr, single)) == sorted(map(repr, joined)), minute
