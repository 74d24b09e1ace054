"""Rows and inserts: flattening rules, and the idempotent batch insert."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from history.client import Warehouse
from history.rows import COLUMN_NAMES, InvalidEvent, event_row, insert_events, registry_host
from linked_artifacts.events import ArtifactEvent

from .builders import Events, digest

STATE_TABLES = (
    "storage_state",
    "deployment_state",
    "deployment_holder_state",
    "deployment_risk_state",
    "alert_state",
    "build_subject_state",
    "build_run_state",
    "link_state",
    "digest_root_state",
)


def _row(event: ArtifactEvent) -> dict[str, Any]:
    return dict(zip(COLUMN_NAMES, event_row(event), strict=True))


def test_moved_storage_event_names_the_location_it_left() -> None:
    e = Events()
    row = _row(e.storage(digest("a"), action="moved", repository="docker-prod", previous_repository="docker-dev"))
    assert (row["storage_vacated_repository"], row["storage_vacated_path"]) == ("docker-dev", "payments/1.0")
    assert row["storage_registry_host"] == "acme.jfrog.io"
    copied = _row(e.storage(digest("a"), action="copied", repository="docker-prod", previous_repository="docker-dev"))
    assert copied["storage_vacated_repository"] == ""


def test_repositories_are_lower_cased_and_terminal_states_rank_higher() -> None:
    e = Events()
    build = _row(e.build(digest("a"), repository="Acme/Payments-API"))
    assert build["build_repository"] == "acme/payments-api"
    alert = _row(e.alert("", repository="Acme/Payments-API"))
    assert alert["alert_repository"] == "acme/payments-api"
    assert _row(e.alert(digest("a"), state="fixed"))["status_rank"] > _row(e.alert(digest("a")))["status_rank"]
    assert _row(e.deploy(digest("a"), status="decommissioned"))["status_rank"] == 1


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://acme.jfrog.io/artifactory/", "acme.jfrog.io"),
        ("GHCR.io", "ghcr.io"),
        ("http://registry.local:5000/v2", "registry.local"),
        ("", ""),
    ],
)
def test_registry_host(url: str, host: str) -> None:
    assert registry_host(url) == host


def test_event_whose_body_is_missing_is_refused() -> None:
    event = Events().storage(digest("a")).model_copy(update={"storage": None})
    with pytest.raises(InvalidEvent):
        event_row(event)


def _counts(warehouse: Warehouse) -> dict[str, int]:
    counts = {t: int(warehouse.query(f"SELECT count() FROM {t}").result_rows[0][0]) for t in STATE_TABLES}
    counts["events"] = int(warehouse.query("SELECT count() FROM events").result_rows[0][0])
    return counts


def _batch() -> list[ArtifactEvent]:
    e = Events()
    index, platform = digest("index"), digest("platform")
    return [
        e.link(index, platform),
        e.storage(index, tags=["1.0"]),
        e.build(index),
        e.run(),
        e.deploy(index, risks=["internet-exposed"], asserted_by="defender"),
        e.alert(platform),
        *(e.storage(digest(f"bulk-{i}"), minute=i) for i in range(200)),
    ]


def test_a_retried_batch_with_the_same_token_adds_no_rows(warehouse: Warehouse) -> None:
    batch = _batch()
    token = f"la.events:0:{uuid.uuid4()}"
    insert_events(warehouse, batch, dedup_token=token)
    first = _counts(warehouse)
    for _ in range(3):
        insert_events(warehouse, batch, dedup_token=token)
    assert _counts(warehouse) == first
    total, unique = warehouse.query("SELECT count(), uniqExact(event_id) FROM events").result_rows[0]
    assert total == unique == len(batch)


def test_a_redelivery_in_another_batch_is_folded_and_never_counted_twice(warehouse: Warehouse) -> None:
    batch = _batch()
    insert_events(warehouse, batch, dedup_token=f"t:{uuid.uuid4()}")
    insert_events(warehouse, batch[:6], dedup_token=f"t:{uuid.uuid4()}")  # same events, another offset range
    # Readers never see the duplicate: current state is by version, history reads are by event_id.
    assert warehouse.query("SELECT count() FROM alerts_current").result_rows[0][0] == 1
    assert warehouse.query("SELECT count() FROM deployments_current").result_rows[0][0] == 1
    warehouse.command("OPTIMIZE TABLE events FINAL")
    total, unique = warehouse.query("SELECT count(), uniqExact(event_id) FROM events").result_rows[0]
    assert total == unique == len(batch)


def test_an_empty_batch_inserts_nothing_and_a_token_is_required(warehouse: Warehouse) -> None:
    assert insert_events(warehouse, [], dedup_token="t") == 0
    with pytest.raises(ValueError, match="dedup_token"):
        insert_events(warehouse, _batch(), dedup_token="")
