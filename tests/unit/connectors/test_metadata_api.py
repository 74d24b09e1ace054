from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.metadata_api import (
    parse_cluster_deployment_records,
    parse_deployment_record,
    parse_storage_record,
)

PAYLOADS = Path(__file__).parent / "payloads" / "metadata_api"
RECEIVED = datetime(2026, 5, 5, 11, 0, 7, 250000, tzinfo=UTC)
INDEX = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
LEDGER = "sha256:947f187506f7629c81c81879a2cb2256455038e4ac770091d897fa0a8b945e3b"
Parser = Callable[[Delivery, Any], ParseResult]


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def call(
    parser: Parser,
    payload: Any,
    *,
    org: str = "acme",
    cluster: str | None = None,
    received_at: datetime = RECEIVED,
) -> ParseResult:
    params = {"org": org} if org else {}
    if cluster is not None:
        params["cluster"] = cluster
    delivery = Delivery(
        endpoint="/orgs/{org}/artifacts/metadata",
        headers={"authorization": "Bearer redacted", "x-github-api-version": "2026-03-10"},
        body=json.dumps(payload).encode(),
        received_at=received_at,
        path_params=params,
    )
    return parser(delivery, payload)


def expect_error(parser: Parser, payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        call(parser, payload, **kwargs)
    return caught.value


def cluster_call(payload: Any, **kwargs: Any) -> ParseResult:
    return call(parse_cluster_deployment_records, payload, cluster="aks-prod-weu-1", **kwargs)


def cluster_error(payload: Any) -> InputError:
    return expect_error(parse_cluster_deployment_records, payload, cluster="aks-prod-weu-1")


# --- storage records ------------------------------------------------------------------------------------


def test_storage_record_becomes_storage_event() -> None:
    result = call(parse_storage_record, load("storage_record.json"))

    assert len(result.events) == 1
    event = result.events[0]
    assert (event.kind, event.source, event.key, event.digest) == ("storage", "metadata-api", INDEX, INDEX)
    assert event.event_time == event.ingest_time == RECEIVED
    storage = event.storage
    assert storage is not None
    assert storage.registry == "jfrog-artifactory"
    assert storage.registry_url == "https://acme.jfrog.io/artifactory/"
    assert storage.repository == "docker-prod-local"
    assert storage.path == "acme/payments-api/1.42.0/list.manifest.json"
    assert storage.name == "acme/payments-api"
    assert storage.version == "1.42.0"
    assert (storage.status, storage.action) == ("active", "record")
    assert storage.github_repository == "acme/payments-api"


def test_storage_record_response_has_githubs_shape() -> None:
    result = call(parse_storage_record, load("storage_record.json"))

    assert result.response is not None
    assert result.response["total_count"] == 1
    (row,) = result.response["storage_records"]
    assert isinstance(row["id"], int) and 0 < row["id"] < 2**53
    assert row["digest"] == INDEX
    assert row["registry_url"] == "https://acme.jfrog.io/artifactory/"
    assert row["status"] == "active"
    assert row["github_repository"] == "payments-api"
    assert row["created_at"] == row["updated_at"] == "2026-05-05T11:00:07Z"


def test_storage_status_defaults_to_active() -> None:
    payload = load("storage_record.json")
    del payload["status"]

    storage = call(parse_storage_record, payload).events[0].storage

    assert storage is not None
    assert storage.status == "active"


@pytest.mark.parametrize(
    ("registry_url", "kind"),
    [
        ("https://ghcr.io/", "ghcr"),
        ("https://registry-1.docker.io/", "docker-hub"),
        ("https://maven.pkg.github.com/acme", "github-packages"),
        ("https://acme.jfrog.io/", "jfrog-artifactory"),
        ("https://registry.acme.internal:5000/", "registry.acme.internal:5000"),
    ],
)
def test_storage_registry_kind_follows_registry_url(registry_url: str, kind: str) -> None:
    payload = load("storage_record.json")
    payload["registry_url"] = registry_url

    storage = call(parse_storage_record, payload).events[0].storage

    assert storage is not None
    assert storage.registry == kind


def test_uppercase_digest_is_accepted_and_lowercased() -> None:
    payload = load("storage_record.json")
    payload["digest"] = payload["digest"].upper().replace("SHA256:", "sha256:")

    assert call(parse_storage_record, payload).events[0].digest == INDEX


def test_identical_repost_is_a_new_observation_of_the_same_record() -> None:
    payload = load("storage_record.json")

    first = call(parse_storage_record, payload)
    again = call(
        parse_storage_record, json.loads(json.dumps(payload, indent=4)), received_at=datetime.now(UTC)
    )

    # Stored twice (two observations, the later one moves last_seen), answered with the same record.
    assert first.events[0].event_id != again.events[0].event_id
    assert first.response is not None and again.response is not None
    assert first.response["storage_records"][0]["id"] == again.response["storage_records"][0]["id"]


def test_the_same_delivery_parsed_twice_gives_the_same_event_id() -> None:
    # What the connectors' own publish retry sends again: one request, one event.
    payload = load("storage_record.json")

    assert call(parse_storage_record, payload).events[0].event_id == call(
        parse_storage_record, json.loads(json.dumps(payload))
    ).events[0].event_id


def test_redeploy_after_a_decommission_is_not_mistaken_for_the_first_deployment() -> None:
    deploy = load("deployment_record.json")
    decommission = {**deploy, "status": "decommissioned"}
    moments = [datetime(2026, 5, 5, 10, minute, tzinfo=UTC) for minute in (0, 1, 2)]

    ids = [
        call(parse_deployment_record, body, received_at=moment).events[0].event_id
        for body, moment in zip((deploy, decommission, deploy), moments, strict=True)
    ]

    assert len(set(ids)) == 3  # the history keeps all three, as the worker's state does


def test_changed_storage_status_gives_new_event_id_but_same_record_id() -> None:
    payload = load("storage_record.json")
    first = call(parse_storage_record, payload)
    payload["status"] = "eol"

    changed = call(parse_storage_record, payload)

    assert first.events[0].event_id != changed.events[0].event_id
    assert first.response is not None and changed.response is not None
    assert first.response["storage_records"][0]["id"] == changed.response["storage_records"][0]["id"]


@pytest.mark.parametrize(
    ("mutate", "field", "needle"),
    [
        (lambda p: p.update(status="archived"), "status", "'active', 'eol' or 'deleted'"),
        (
            lambda p: p.update(digest="1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"),
            "digest",
            "sha256:",
        ),
        (lambda p: p.update(digest="sha512:" + "ab" * 64), "digest", "sha256:"),
        (lambda p: p.update(name=""), "name", "at least 1"),
        (lambda p: p.update(name="n" * 256), "name", "at most 255"),
        (lambda p: p.pop("registry_url"), "registry_url", "required"),
        (lambda p: p.update(version=42), "version", "string"),
    ],
)
def test_invalid_storage_record_is_a_422_naming_the_field(
    mutate: Callable[[dict[str, Any]], Any], field: str, needle: str
) -> None:
    payload = load("storage_record.json")
    mutate(payload)

    error = expect_error(parse_storage_record, payload)

    assert (error.status, error.field) == (422, field)
    assert needle in error.message
    assert error.message.startswith(f"{field}: ")


def test_body_that_is_not_an_object_is_rejected() -> None:
    error = expect_error(parse_storage_record, [load("storage_record.json")])

    assert (error.status, error.field) == (422, "body")


def test_missing_org_path_parameter_is_a_400() -> None:
    error = expect_error(parse_storage_record, load("storage_record.json"), org="")

    assert (error.status, error.field) == (400, "org")


# --- single deployment records --------------------------------------------------------------------------


def test_deployment_record_becomes_deployment_event_for_its_slot() -> None:
    result = call(parse_deployment_record, load("deployment_record.json"))

    (event,) = result.events
    assert (event.kind, event.key, event.digest, event.source) == ("deployment", INDEX, INDEX, "metadata-api")
    deployment = event.deployment
    assert deployment is not None
    assert deployment.logical_environment == "prod"
    assert deployment.physical_environment == "westeurope"
    assert deployment.cluster == "aks-prod-weu-1"
    assert deployment.deployment_name == "payments-payments-api-app"
    assert deployment.status == "deployed"
    assert deployment.runtime_risks == ["internet-exposed", "sensitive-data"]
    assert deployment.risks_asserted_by == "metadata-api"
    assert deployment.tags == {"team": "payments", "data-classification": "pci"}
    assert deployment.github_repository == "acme/payments-api"
    assert (deployment.name, deployment.version) == ("acme/payments-api", "1.42.0")


def test_deployment_record_response_has_githubs_shape() -> None:
    result = call(parse_deployment_record, load("deployment_record.json"))

    assert result.response is not None
    assert result.response["total_count"] == 1
    (row,) = result.response["deployment_records"]
    assert set(row) >= {
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
    assert row["cluster"] == "aks-prod-weu-1"
    assert row["created_at"] == "2026-05-05T11:00:07Z"


def test_new_digest_in_the_same_slot_keeps_record_id_and_changes_event_id() -> None:
    payload = load("deployment_record.json")
    first = call(parse_deployment_record, payload)
    payload["digest"] = LEDGER

    rollout = call(parse_deployment_record, payload)

    assert first.response is not None and rollout.response is not None
    assert first.response["deployment_records"][0]["id"] == rollout.response["deployment_records"][0]["id"]
    assert first.events[0].event_id != rollout.events[0].event_id
    assert rollout.events[0].key == LEDGER


def test_deployment_without_physical_environment_or_cluster_uses_empty_slot_parts() -> None:
    payload = load("deployment_record.json")
    del payload["physical_environment"], payload["cluster"]

    deployment = call(parse_deployment_record, payload).events[0].deployment

    assert deployment is not None
    assert (deployment.physical_environment, deployment.cluster) == ("", "")


def test_deployment_status_is_required() -> None:
    payload = load("deployment_record.json")
    del payload["status"]

    error = expect_error(parse_deployment_record, payload)

    assert (error.status, error.field) == (422, "status")


def test_unknown_runtime_risk_is_rejected_naming_allowed_values() -> None:
    payload = load("deployment_record.json")
    payload["runtime_risks"] = ["internet-exposed", "internet_exposed"]

    error = expect_error(parse_deployment_record, payload)

    assert (error.status, error.field) == (422, "runtime_risks[1]")
    for allowed in ("critical-resource", "internet-exposed", "lateral-movement", "sensitive-data"):
        assert allowed in error.message


def test_deployment_tags_must_be_strings() -> None:
    payload = load("deployment_record.json")
    payload["tags"] = {"replicas": 3}

    error = expect_error(parse_deployment_record, payload)

    assert error.field == "tags.replicas"


# --- cluster bulk upsert --------------------------------------------------------------------------------


def test_cluster_bulk_upsert_gives_one_event_per_item_with_cluster_from_path() -> None:
    result = cluster_call(load("cluster_deployment_records.json"))

    assert [e.digest for e in result.events] == [INDEX, INDEX, LEDGER]
    deployments = [e.deployment for e in result.events if e.deployment is not None]
    assert {d.cluster for d in deployments} == {"aks-prod-weu-1"}
    assert {(d.logical_environment, d.physical_environment) for d in deployments} == {("prod", "westeurope")}
    assert [d.status for d in deployments] == ["deployed", "deployed", "decommissioned"]
    assert deployments[2].github_repository == "acme/ledger-worker"
    assert len({e.event_id for e in result.events}) == 3


def test_cluster_bulk_upsert_response_lists_every_record() -> None:
    result = cluster_call(load("cluster_deployment_records.json"))

    assert result.response is not None
    assert result.response["total_count"] == 3
    rows = result.response["deployment_records"]
    assert [row["deployment_name"] for row in rows] == [
        "payments-payments-api-app",
        "payments-payments-api-migrate",
        "ledger-ledger-worker-worker",
    ]
    assert len({row["id"] for row in rows}) == 3


def test_cluster_item_matches_the_single_endpoint_record_id_for_the_same_slot() -> None:
    single = call(parse_deployment_record, load("deployment_record.json"))
    bulk = cluster_call(load("cluster_deployment_records.json"))

    assert single.response is not None and bulk.response is not None
    assert single.response["deployment_records"][0]["id"] == bulk.response["deployment_records"][0]["id"]


def test_cluster_set_parsed_twice_gives_identical_event_ids() -> None:
    payload = load("cluster_deployment_records.json")

    first = cluster_call(payload)
    retry = cluster_call(json.loads(json.dumps(payload)))

    assert [e.event_id for e in first.events] == [e.event_id for e in retry.events]


def test_cluster_set_posted_again_later_is_new_observations() -> None:
    payload = load("cluster_deployment_records.json")

    first = cluster_call(payload)
    later = cluster_call(json.loads(json.dumps(payload)), received_at=datetime.now(UTC))

    assert not {e.event_id for e in first.events} & {e.event_id for e in later.events}


def test_empty_cluster_set_is_accepted_with_zero_records() -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"] = []

    result = cluster_call(payload)

    assert result.events == ()
    assert result.response == {"total_count": 0, "deployment_records": []}


def test_cluster_path_parameter_is_required() -> None:
    error = expect_error(parse_cluster_deployment_records, load("cluster_deployment_records.json"))

    assert (error.status, error.field) == (400, "cluster")


def test_duplicate_deployment_name_in_cluster_set_is_rejected() -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"][2]["deployment_name"] = "payments-payments-api-app"

    error = cluster_error(payload)

    assert (error.status, error.field) == (422, "deployments[2].deployment_name")
    assert "deployments[0]" in error.message


@pytest.mark.parametrize(("attribute", "value"), [("name", "acme/payments"), ("version", "1.42.1")])
def test_same_digest_with_different_name_or_version_is_rejected(attribute: str, value: str) -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"][1][attribute] = value

    error = cluster_error(payload)

    assert (error.status, error.field) == (422, f"deployments[1].{attribute}")


def test_invalid_risk_deep_in_cluster_set_names_its_json_path() -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"][2]["runtime_risks"] = ["exposed"]

    error = cluster_error(payload)

    assert (error.status, error.field) == (422, "deployments[2].runtime_risks[0]")
    assert "lateral-movement" in error.message


def test_bad_digest_in_cluster_set_names_its_json_path() -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"][1]["digest"] = "sha256:1bc04b52"

    error = cluster_error(payload)

    assert error.field == "deployments[1].digest"
    assert "sha256:<64 hex digits>" in error.message


def test_cluster_item_status_defaults_to_deployed_and_rejects_unknown_values() -> None:
    payload = load("cluster_deployment_records.json")
    payload["deployments"][0]["status"] = "running"

    error = cluster_error(payload)

    assert error.field == "deployments[0].status"
    assert "'deployed' or 'decommissioned'" in error.message


def test_missing_deployments_array_is_rejected() -> None:
    payload = load("cluster_deployment_records.json")
    del payload["deployments"]

    error = cluster_error(payload)

    assert (error.status, error.field) == (422, "deployments")
