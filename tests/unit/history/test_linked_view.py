"""The linked view over a hand-built multi-arch history (see builders.Triage)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from history.client import Warehouse
from history.linked_view import deployment_records, linked_view, storage_records
from history.rows import insert_events
from linked_artifacts.digests import InvalidDigest

from .builders import Triage, at, digest


@pytest.fixture
def triage(warehouse: Warehouse) -> Triage:
    history = Triage()
    insert_events(warehouse, history.events, dedup_token=f"t:{uuid.uuid4()}")
    return history


def _view(warehouse: Warehouse, d: str, **kwargs: Any) -> dict[str, Any]:
    view = linked_view(warehouse, d, **kwargs)
    assert view is not None
    return view


def test_any_linked_digest_finds_the_same_artifact(warehouse: Warehouse, triage: Triage) -> None:
    views = [_view(warehouse, d) for d in (triage.index, triage.amd64, triage.arm64)]
    for view in views:
        assert view["family"]["root"] == triage.index
        assert view["family"]["digests"] == sorted([triage.index, triage.amd64, triage.arm64])
        assert {p["platform"] for p in view["family"]["platform_digests"]} == {"linux/amd64", "linux/arm64"}
    for part in ("storage", "builds", "deployments", "alerts"):
        assert views[0][part] == views[1][part] == views[2][part]


def test_deployment_on_the_index_reaches_its_platforms(warehouse: Warehouse, triage: Triage) -> None:
    view = _view(warehouse, triage.amd64)
    [deployment] = view["deployments"]
    assert deployment["digest"] == triage.index
    assert (deployment["logical_environment"], deployment["cluster"]) == ("prod", "aks-prod-1")
    # The Kubernetes re-observation carried no risks; the monitor's assertion stands.
    assert deployment["runtime_risks"] == ["internet-exposed"]
    assert deployment["risks_asserted_by"] == "defender-for-cloud"
    assert deployment["tags"] == {"team": "payments"}


def test_alert_on_a_platform_reaches_the_index_with_its_exposure(warehouse: Warehouse, triage: Triage) -> None:
    view = _view(warehouse, triage.index)
    keys = [a["alert_key"] for a in view["alerts"]]
    assert keys[0] == triage.key(triage.cve_b)
    top = view["alerts"][0]
    assert top["score"] == 40 + 20 + 18 + 25 + 10
    assert top["reasons"] == [
        "critical severity (+40)",
        "CVSS 9.8 (+20)",
        "EPSS 0.92 (+18)",
        "internet-exposed in prod (+25)",
        "deployed in production: prod (+10)",
    ]


def test_repository_alert_reaches_artifacts_built_from_that_repository(warehouse: Warehouse, triage: Triage) -> None:
    view = _view(warehouse, triage.arm64)
    by_key = {a["alert_key"]: a for a in view["alerts"]}
    repo_alert = by_key[triage.key(triage.repo_alert)]
    assert repo_alert["artifact"] == triage.index
    assert repo_alert["repository"] == "acme/payments-api"
    assert triage.key(triage.fixed_i) in by_key  # the linked view lists closed alerts too
    assert triage.key(triage.cve_x) not in by_key
    assert view["repositories"] == ["acme/payments-api"]


def test_slot_takeover_and_slot_deletion(warehouse: Warehouse, triage: Triage) -> None:
    assert _view(warehouse, triage.old)["deployments"] == []
    assert _view(warehouse, triage.gone)["deployments"] == []
    # Before I took over slot S1, OLD held it; before the staging slot was deleted, GONE ran there.
    assert [d["digest"] for d in _view(warehouse, triage.old, as_of=at(5))["deployments"]] == [triage.old]
    assert [d["digest"] for d in _view(warehouse, triage.gone, as_of=at(45))["deployments"]] == [triage.gone]
    assert _view(warehouse, triage.index, as_of=at(5))["deployments"] == []


def test_storage_locations_with_tags_over_time_and_a_move(warehouse: Warehouse, triage: Triage) -> None:
    storage = {s["repository"]: s for s in _view(warehouse, triage.index)["storage"]}
    assert storage["docker-local"]["status"] == "deleted"
    assert storage["docker-prod"]["status"] == "active"
    assert [t["tag"] for t in storage["docker-local"]["tag_history"]] == ["1.0", "latest"]
    assert storage["docker-local"]["created_at"] == "2025-03-03T09:01:00Z"


def test_builds_carry_provenance_and_the_workflow_run(warehouse: Warehouse, triage: Triage) -> None:
    [build] = _view(warehouse, triage.amd64)["builds"]
    assert build["repository"] == "acme/payments-api"
    assert build["workflow_run_id"] == 42
    assert build["attestation_sha256"] == "a" * 64
    assert build["workflow"]["conclusion"] == "success"
    assert build["workflow"]["run_url"].endswith("/actions/runs/42")


def test_history_is_recent_first_and_limited(warehouse: Warehouse, triage: Triage) -> None:
    history = _view(warehouse, triage.index, history_limit=3)["history"]
    assert len(history) == 3
    times = [h["event_time"] for h in history]
    assert times == sorted(times, reverse=True)


def test_unknown_digest_has_no_view_and_a_malformed_one_is_refused(warehouse: Warehouse, triage: Triage) -> None:
    assert linked_view(warehouse, digest("never-seen")) is None
    with pytest.raises(InvalidDigest):
        linked_view(warehouse, "sha256:not-hex")


def test_github_metadata_read_shapes(warehouse: Warehouse, triage: Triage) -> None:
    records = storage_records(warehouse, triage.index)
    assert records["total_count"] == 2
    assert set(records["storage_records"][0]) == {
        "id",
        "name",
        "digest",
        "artifact_url",
        "registry_url",
        "repository",
        "status",
        "created_at",
        "updated_at",
    }
    deployments = deployment_records(warehouse, triage.index)
    assert deployments["total_count"] == 1
    [record] = deployments["deployment_records"]
    assert set(record) == {
        "id",
        "digest",
        "logical_environment",
        "physical_environment",
        "cluster",
        "deployment_name",
        "tags",
        "runtime_risks",
        "created_at",
        "updated_at",
    }
    assert record["created_at"] == "2025-03-03T09:10:00Z"
    assert deployment_records(warehouse, triage.old)["total_count"] == 0
