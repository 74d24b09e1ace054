"""The linked view's current path (state tables read by sort key, the family's alerts ranked in Python) gives
what the views and the SQL ranking give, on random histories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.alert_filter import CompiledFilter
from history.alerts import rank
from history.client import Warehouse
from history.family_events import FamilyEvents
from history.linked_view import linked_view
from history.rows import insert_events
from linked_artifacts.events import ArtifactEvent

from .builders import Events, digest
from .conftest import empty_tables
from .test_views import _DIGESTS, _P2, histories

FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)
# A second, smaller index that also contains P2: P2's family root is then this one, not I.
_I0 = digest("i0")


def _second_index() -> ArtifactEvent:
    event = Events().link(_I0, _P2, minute=2, arch="linux/arm64")
    return event.model_copy(update={"event_id": "ev-second-index", "delivery_id": "delivery-second-index"})


def _deployments_view(warehouse: Warehouse, digests: list[str]) -> list[tuple[Any, ...]]:
    rows = warehouse.query(
        "SELECT digest, logical_environment, physical_environment, cluster, deployment_name, "
        "arraySort(CAST(runtime_risks, 'Array(String)')), deployed_at FROM deployments_current "
        "WHERE digest IN {ds:Array(String)}",
        {"ds": digests},
    ).result_rows
    return sorted(tuple(r) for r in rows)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(events=histories(), second_index=st.booleans())
def test_current_reads_agree_with_the_views_and_the_ranking(
    warehouse: Warehouse, events: list[ArtifactEvent], second_index: bool
) -> None:
    empty_tables(warehouse)
    insert_events(warehouse, [*events, *([_second_index()] if second_index else [])], dedup_token=f"t:{uuid.uuid4()}")
    # The SQL ranking with inlined CTEs: chDB 26.9 sometimes fails the materialized form of the families scope
    # ("Reading from materialized CTE 'members' before its materialization completed", a LOGICAL_ERROR).
    reference = warehouse.session()
    reference._materialized_cte = False
    try:
        _compare(warehouse, reference)
    finally:
        reference.close()


def _narrow_reads(warehouse: Warehouse, digest_: str, as_of: datetime | None) -> dict[str, Any] | None:
    """The linked view through its separate, limited reads of the history (as for a family with more than
    MAX_FAMILY_EVENTS events) instead of one read of the family's events."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FamilyEvents, "read", classmethod(lambda cls, *args, **kwargs: None))
        return linked_view(warehouse, digest_, as_of=as_of)


def _compare(warehouse: Warehouse, reference: Warehouse) -> None:
    middle = warehouse.query("SELECT quantileExact(0.5)(event_time) FROM events").result_rows[0][0]
    for d in [*_DIGESTS, _I0]:
        view = linked_view(warehouse, d)
        # One read of the family's events answers as the separate reads do, now and at any time.
        assert view == _narrow_reads(warehouse, d, None)
        assert linked_view(warehouse, d, as_of=middle) == _narrow_reads(warehouse, d, middle)
        as_of = linked_view(warehouse, d, as_of=FAR_FUTURE)
        if view is None or as_of is None:
            assert view is None and as_of is None
            continue
        # The as-of path still reads the *_at views: at the end of time both paths must agree, field by field.
        assert {**view, "as_of": None} == {**as_of, "as_of": None}
        _, ranked = rank(reference, CompiledFilter("1", {}, None, False), limit=100, families=[view["family"]["root"]])
        assert view["alerts"] == [a.model_dump(mode="json") for a in ranked]
        expected = [(*e[:6], e[6].isoformat().replace("+00:00", "Z")) for e in
                    _deployments_view(warehouse, view["family"]["digests"])]
        got = sorted(
            (x["digest"], x["logical_environment"], x["physical_environment"], x["cluster"], x["deployment_name"],
             x["runtime_risks"], x["deployed_at"])
            for x in view["deployments"]
        )
        assert got == expected
