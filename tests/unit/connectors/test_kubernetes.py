from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.kubernetes import parse_image_reference, parse_kubernetes
from linked_artifacts.events import ArtifactEvent, slot_key

PAYLOADS = Path(__file__).parent / "payloads" / "kubernetes"
RECEIVED = datetime(2026, 5, 6, 15, 0, tzinfo=UTC)
PAYMENTS = "sha256:b668cb20aae7527ae111769d5423bd39a5815424ac20189c0a8888dd128fb0f5"
MIGRATE = "sha256:5ae89467e19db862f5319d55e79a4f0ccffe9225d75c4c7660ba5f7d6345d2fd"
LEDGER = "sha256:87eba76e7f3164534045ba922e7770fb58bbd14ad732bbf5ba6f11cc56989e6e"
ENVOY = "sha256:84532b306f259587c364bd7301e0813963d5b84fd27c9338f0862dab8f0499d7"
FLUENTBIT = "sha256:d7820a83db0ca1a2e8c370fe29da630ebe4b1cc08e1f0b22bb38332e8e99e0dd"
NGINX = "sha256:5be1ecc7935f1dd85635d4feedaf660594030253cc97c9e9ca3819ffeac36b65"
SEARCH = "sha256:c374eea599bb3c50ed4432ef57aee1263cdc3c83d1c1a3c4d7e19eef1af8439b"
METRICS = "sha256:a7472226866d3910e8ea30f9a03d2db6fb329b703b803c51b15d656fbfe264ce"
REPORT = "sha256:c49fea7425fa7f8699897a97c159c6690267d9003bb78c53fafa8fc15c325d84"
SENDER = {"cluster": "aks-prod-weu-1", "environment": "prod", "region": "westeurope"}


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def deliver(
    payload: Any,
    *,
    sender: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    received: datetime = RECEIVED,
) -> ParseResult:
    body = json.dumps(payload).encode()
    delivery = Delivery(
        endpoint="/events/kubernetes",
        headers={"content-type": "application/json"},
        body=body,
        received_at=received,
        query=query or {},
        sender=SENDER if sender is None else sender,
    )
    return parse_kubernetes(delivery, payload)


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


def deployments(result: ParseResult) -> list[ArtifactEvent]:
    return [e for e in result.events if e.kind == "deployment"]


def storage(result: ParseResult) -> list[ArtifactEvent]:
    return [e for e in result.events if e.kind == "storage"]


# --- running pods ------------------------------------------------------------------------------------------


def test_running_pod_becomes_deployed_event_in_github_slot_format() -> None:
    result = deliver(load("pod_running.json"))

    [event] = deployments(result)
    body = event.deployment
    assert body is not None
    assert event.key == event.digest == PAYMENTS
    assert event.source == "kubernetes"
    assert event.event_time == datetime(2026, 5, 5, 10, 25, 1, tzinfo=UTC)
    assert event.ingest_time == RECEIVED
    assert body.status == "deployed"
    assert body.deployment_name == "payments-payments-api-app"
    assert body.workload == "Deployment/payments-api"
    assert (body.logical_environment, body.physical_environment, body.cluster) == (
        "prod",
        "westeurope",
        "aks-prod-weu-1",
    )
    assert body.namespace == "payments"
    assert body.container == "app"
    assert body.image_ref == "ghcr.io/acme/payments-api:1.42.0"
    assert (body.name, body.version) == ("acme/payments-api", "1.42.0")


def test_runtime_risk_annotation_becomes_risks_asserted_by_the_cluster_and_drops_unknown_values() -> None:
    result = deliver(load("pod_running.json"))

    body = deployments(result)[0].deployment
    assert body is not None
    assert body.runtime_risks == ["internet-exposed", "sensitive-data"]
    assert body.risks_asserted_by == "kubernetes:aks-prod-weu-1"
    assert result.note is not None and "quantum-exposed" in result.note


def test_github_annotations_become_at_most_five_sorted_tags() -> None:
    body = deployments(deliver(load("pod_running.json")))[0].deployment
    assert body is not None
    assert body.tags == {
        "cost-center": "cc-4411",
        "data-classification": "pci",
        "owner": "payments-oncall",
        "team": "payments",
        "tier": "1",
    }


def test_tag_longer_than_100_characters_is_dropped_with_a_note() -> None:
    pod = load("pod_running.json")
    pod["metadata"]["annotations"] = {"metadata.github.com/notes": "x" * 101, "metadata.github.com/team": "a"}

    result = deliver(pod)

    body = deployments(result)[0].deployment
    assert body is not None
    assert body.tags == {"team": "a"}
    assert result.note is not None and "notes" in result.note


def test_running_pod_records_image_reference_repository_as_observed_storage() -> None:
    result = deliver(load("pod_running.json"))

    [event] = storage(result)
    body = event.storage
    assert body is not None
    assert event.key == event.digest == PAYMENTS
    assert body.action == "observed"
    assert body.registry == "ghcr.io"
    assert body.registry_url == "https://ghcr.io/"
    assert body.repository == "acme/payments-api"
    assert body.tags == ["1.42.0"]
    assert event.event_id != deployments(result)[0].event_id


def test_pod_list_records_init_containers_and_every_imageid_form() -> None:
    result = deliver(load("podlist_with_init_containers.json"))

    by_container = {e.deployment.container: e for e in deployments(result) if e.deployment}
    assert set(by_container) == {"migrate", "ledger", "envoy", "fluent-bit"}
    assert by_container["migrate"].digest == MIGRATE
    assert by_container["ledger"].digest == LEDGER
    assert by_container["envoy"].digest == ENVOY  # docker://sha256:… form
    assert by_container["fluent-bit"].digest == FLUENTBIT
    # An init container has terminated; its start time is when it ran that digest.
    assert by_container["migrate"].event_time == datetime(2026, 5, 4, 6, 0, 5, tzinfo=UTC)


def test_statefulset_and_daemonset_owners_name_the_workload_directly() -> None:
    result = deliver(load("podlist_with_init_containers.json"))

    names = {e.deployment.deployment_name: e.deployment.workload for e in deployments(result) if e.deployment}
    assert names == {
        "finance-ledger-migrate": "StatefulSet/ledger",
        "finance-ledger-ledger": "StatefulSet/ledger",
        "finance-ledger-envoy": "StatefulSet/ledger",
        "logging-fluent-bit-fluent-bit": "DaemonSet/fluent-bit",
    }


def test_status_image_that_is_only_an_image_id_falls_back_to_the_spec_reference() -> None:
    result = deliver(load("podlist_with_init_containers.json"))

    envoy = next(e for e in deployments(result) if e.deployment and e.deployment.container == "envoy")
    assert envoy.deployment is not None
    assert envoy.deployment.image_ref == "envoyproxy/envoy:v1.30.1"
    observed = next(e for e in storage(result) if e.digest == ENVOY)
    assert observed.storage is not None
    assert (observed.storage.registry, observed.storage.repository) == ("docker.io", "envoyproxy/envoy")


def test_container_without_resolved_image_id_is_skipped_with_a_note() -> None:
    result = deliver(load("pod_pending_container.json"))

    [event] = deployments(result)
    assert event.digest == SEARCH
    assert event.deployment is not None
    assert event.deployment.deployment_name == "search-search-api-api"
    assert result.note is not None and "cache-warmer" in result.note and "pending" in result.note


def test_pod_not_yet_running_is_ignored_with_a_note() -> None:
    pod = load("pod_pending_container.json")
    pod["status"]["phase"] = "Pending"

    result = deliver(pod)

    assert result.events == ()
    assert result.ignored
    assert result.note is not None and "Pending" in result.note


def test_redelivered_pod_gets_the_same_event_ids() -> None:
    first = deliver(load("pod_running.json"))
    again = deliver(load("pod_running.json"), received=datetime(2026, 5, 7, tzinfo=UTC))

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_new_risk_annotation_on_the_same_container_is_a_new_event() -> None:
    pod = load("pod_running.json")
    changed = copy.deepcopy(pod)
    changed["metadata"]["annotations"]["metadata.github.com/runtime-risks"] = "lateral-movement"

    assert deployments(deliver(pod))[0].event_id != deployments(deliver(changed))[0].event_id


def test_replicaset_without_hash_label_strips_a_hash_like_last_segment() -> None:
    pod = load("pod_running.json")
    del pod["metadata"]["labels"]

    body = deployments(deliver(pod))[0].deployment
    assert body is not None
    assert body.workload == "Deployment/payments-api"


def test_replicaset_name_without_a_hash_suffix_stays_the_workload() -> None:
    pod = load("pod_running.json")
    del pod["metadata"]["labels"]
    pod["metadata"]["ownerReferences"][0]["name"] = "legacy-db"

    body = deployments(deliver(pod))[0].deployment
    assert body is not None
    assert body.workload == "ReplicaSet/legacy-db"
    assert body.deployment_name == "payments-legacy-db-app"


def test_query_parameters_override_the_token_settings() -> None:
    query = {"cluster": "aks-dr-neu-1", "environment": "dr", "region": "northeurope"}

    body = deployments(deliver(load("pod_running.json"), query=query))[0].deployment

    assert body is not None
    assert (body.cluster, body.logical_environment, body.physical_environment) == (
        "aks-dr-neu-1",
        "dr",
        "northeurope",
    )
    assert body.risks_asserted_by == "kubernetes:aks-dr-neu-1"


def test_region_is_empty_when_neither_query_nor_token_names_one() -> None:
    body = deployments(deliver(load("pod_running.json"), sender={"cluster": "c1", "environment": "prod"}))[0]
    assert body.deployment is not None
    assert body.deployment.physical_environment == ""


# --- deletions ---------------------------------------------------------------------------------------------


def test_deleted_pod_of_a_replicaset_is_ignored_because_the_workload_still_exists() -> None:
    result = deliver(load("watch_deleted_replicaset_pod.json"))

    assert result.events == ()
    assert result.ignored
    assert result.note is not None and "Deployment/payments-api still exists" in result.note


def test_deleted_bare_pod_decommissions_its_slot_with_the_digest_it_ran() -> None:
    result = deliver(load("watch_deleted_bare_pod.json"))

    [event] = result.events
    body = event.deployment
    assert body is not None
    assert event.key == event.digest == NGINX
    assert body.status == "decommissioned"
    assert body.deployment_name == "ops-debug-shell-shell"
    assert body.workload == "Pod/debug-shell"
    assert body.runtime_risks == []
    assert body.risks_asserted_by is None
    assert event.event_time == datetime(2026, 5, 6, 14, 30, tzinfo=UTC)


def test_deleted_deployment_decommissions_each_container_slot() -> None:
    result = deliver(load("watch_deleted_deployment.json"))

    by_container = {e.deployment.container: e for e in result.events if e.deployment}
    assert set(by_container) == {"app", "metrics"}
    app, metrics = by_container["app"], by_container["metrics"]
    # Not pinned: the slot is named, and the stream processor resolves which digest held it.
    assert app.digest is None
    assert app.key == slot_key("prod", "westeurope", "aks-prod-weu-1", "payments-payments-api-app")
    # Pinned by digest: the digest is known.
    assert metrics.key == metrics.digest == METRICS
    for event in result.events:
        assert event.deployment is not None
        assert event.deployment.status == "decommissioned"
        assert event.deployment.workload == "Deployment/payments-api"
        # No deletionTimestamp: the receipt time is the best the event has.
        assert event.event_time == RECEIVED


def test_deleted_deployment_slot_matches_the_slot_its_pods_reported() -> None:
    pod_slot = deployments(deliver(load("pod_running.json")))[0].deployment
    deleted = deliver(load("watch_deleted_deployment.json"))

    assert pod_slot is not None
    assert pod_slot.deployment_name in {e.deployment.deployment_name for e in deleted.events if e.deployment}


def test_redelivered_deletion_without_timestamp_keeps_its_event_ids() -> None:
    first = deliver(load("watch_deleted_deployment.json"))
    again = deliver(load("watch_deleted_deployment.json"), received=datetime(2026, 5, 9, tzinfo=UTC))

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_deleted_replicaset_owned_by_a_deployment_is_ignored() -> None:
    event = {
        "type": "DELETED",
        "object": {
            "kind": "ReplicaSet",
            "metadata": {
                "name": "payments-api-6b5c4d3f2",
                "namespace": "payments",
                "ownerReferences": [{"kind": "Deployment", "name": "payments-api", "controller": True}],
            },
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "ghcr.io/acme/p:1"}]}}},
        },
    }

    result = deliver(event)

    assert result.events == ()
    assert result.note is not None and "Deployment still exists" in result.note


def test_added_workload_is_ignored_because_pods_say_what_runs() -> None:
    deployment = load("watch_deleted_deployment.json")
    deployment["type"] = "ADDED"

    result = deliver(deployment)

    assert result.events == ()
    assert result.ignored


# --- watch event lists -------------------------------------------------------------------------------------


def test_list_of_watch_events_skips_bookmarks_and_finished_pods() -> None:
    result = deliver(load("watch_events.json"))

    [event] = deployments(result)
    assert event.digest == REPORT
    assert event.deployment is not None
    assert event.deployment.workload == "Job/report-28571440"
    assert result.note is not None and "BOOKMARK" in result.note and "Succeeded" in result.note


# --- image references --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("ghcr.io/acme/app:1.2", ("ghcr.io", "acme/app", "1.2", None)),
        ("nginx", ("docker.io", "library/nginx", None, None)),
        ("bitnami/redis:7.2", ("docker.io", "bitnami/redis", "7.2", None)),
        ("index.docker.io/library/alpine:3.19", ("docker.io", "library/alpine", "3.19", None)),
        ("localhost:5000/team/app:dev", ("localhost:5000", "team/app", "dev", None)),
        (
            "Registry.ACME.example/acme/app@sha256:" + "AB" * 32,
            ("registry.acme.example", "acme/app", None, "sha256:" + "ab" * 32),
        ),
        (
            "docker-pullable://ghcr.io/acme/app@sha256:" + "cd" * 32,
            ("ghcr.io", "acme/app", None, "sha256:" + "cd" * 32),
        ),
    ],
)
def test_image_reference_splits_into_registry_repository_tag_and_pinned_digest(
    ref: str, expected: tuple[str, str, str | None, str | None]
) -> None:
    parsed = parse_image_reference(ref)
    assert parsed is not None
    assert tuple(parsed) == expected


def test_image_reference_that_is_only_a_digest_names_no_repository() -> None:
    assert parse_image_reference("sha256:" + "ab" * 32) is None
    assert parse_image_reference("docker://sha256:" + "ab" * 32) is None


# --- malformed input ---------------------------------------------------------------------------------------


def test_missing_cluster_is_rejected_with_a_fix_hint() -> None:
    error = expect_error(load("pod_running.json"), sender={"environment": "prod"})

    assert (error.status, error.field) == (422, "cluster")
    assert "?cluster=" in error.message and "kubernetes_cluster" in error.message


def test_missing_environment_is_rejected_with_a_fix_hint() -> None:
    error = expect_error(load("pod_running.json"), sender={"cluster": "c1"})

    assert (error.status, error.field) == (422, "environment")
    assert "?environment=" in error.message


def test_unsupported_kind_is_rejected_naming_its_path() -> None:
    pod_list = load("podlist_with_init_containers.json")
    pod_list["items"][1]["kind"] = "Service"

    error = expect_error(pod_list)

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "items[1].kind")


def test_unknown_watch_type_is_rejected_naming_its_index() -> None:
    events = load("watch_events.json")
    events[2]["type"] = "UPSERTED"

    error = expect_error(events)

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "[2].type")


def test_container_status_without_name_is_rejected_with_full_path() -> None:
    pod_list = load("podlist_with_init_containers.json")
    del pod_list["items"][0]["status"]["containerStatuses"][1]["name"]

    error = expect_error(pod_list)

    assert (error.status, error.field) == (422, "items[0].status.containerStatuses[1].name")
    assert error.message.startswith("items[0].status.containerStatuses[1].name:")


def test_pod_without_namespace_is_rejected() -> None:
    pod = load("pod_running.json")
    del pod["metadata"]["namespace"]

    error = expect_error(pod)

    assert (error.status, error.field) == (422, "metadata.namespace")


def test_bad_started_at_is_rejected_naming_the_field() -> None:
    pod = load("pod_running.json")
    pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"] = "yesterday"

    error = expect_error(pod)

    assert (error.status, error.field) == (422, "status.containerStatuses[0].state.running.startedAt")


@pytest.mark.parametrize("payload", ["a pod", 42, None])
def test_body_that_is_not_an_object_or_array_is_a_400(payload: Any) -> None:
    error = expect_error(payload)

    assert (error.status, error.field) == (400, "$")


def test_pod_list_whose_items_are_not_an_array_is_a_400() -> None:
    error = expect_error({"kind": "PodList", "items": {"a": 1}})

    assert (error.status, error.field) == (400, "items")


def test_image_id_with_another_algorithm_is_skipped_with_a_note() -> None:
    pod = load("pod_running.json")
    pod["status"]["containerStatuses"][0]["imageID"] = "ghcr.io/acme/payments-api@sha512:" + "ab" * 64

    result = deliver(pod)

    assert result.events == ()
    assert result.note is not None and "sha512" in result.note


# --- robustness --------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutations(draw: st.DrawFn, document: Any) -> Any:
    """The document with one subtree, chosen at random, replaced by arbitrary JSON or removed."""
    root = copy.deepcopy(document)
    parent: Any = None
    key: Any = None
    node = root
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    if parent is None:
        return draw(JSON_VALUES)
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(JSON_VALUES)
    return root


@pytest.mark.parametrize(
    "fixture",
    [
        "pod_running.json",
        "podlist_with_init_containers.json",
        "watch_events.json",
        "watch_deleted_deployment.json",
        "watch_deleted_bare_pod.json",
    ],
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_parsed_or_refused_with_an_input_error(fixture: str, data: st.DataObject) -> None:
    payload = data.draw(mutations(load(fixture)))
    try:
        result = deliver(payload)
    except InputError as error:
        assert error.status in (400, 422)
        assert error.field
    else:
        assert isinstance(result, ParseResult)


def test_out_of_range_deletion_timestamp_is_a_422_not_a_crash() -> None:
    event = load("watch_deleted_bare_pod.json")
    event["object"]["metadata"]["deletionTimestamp"] = "0001-01-01T00:00:00+01:00"

    error = expect_error(event)

    assert (error.status, error.field) == (422, "object.metadata.deletionTimestamp")
