from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.cloudevents import (
    BATCH_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    parse_cloudevents,
)
from linked_artifacts.events import ArtifactEvent, slot_key

PAYLOADS = Path(__file__).parent / "payloads" / "cloudevents"
RECEIVED = datetime(2026, 5, 8, 9, 0, tzinfo=UTC)
INDEX = "sha256:b668cb20aae7527ae111769d5423bd39a5815424ac20189c0a8888dd128fb0f5"
AMD64 = "sha256:f2dda23246b17dc4fe14cd6660f1fb5b79a09705b8fa1684d2985326ed2d6a5b"
ARM64 = "sha256:5d17344765ca832e76fc1cc94441df8d7154de754f6aff31c9c2984e2f2cdfcc"
WORKER = "sha256:87eba76e7f3164534045ba922e7770fb58bbd14ad732bbf5ba6f11cc56989e6e"


def load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def deliver(
    payload: Any,
    *,
    content_type: str | None = None,
    headers: dict[str, str] | None = None,
    received: datetime = RECEIVED,
) -> ParseResult:
    all_headers = dict(headers or {})
    if content_type is None:
        content_type = BATCH_CONTENT_TYPE if isinstance(payload, list) else STRUCTURED_CONTENT_TYPE
    if content_type:
        all_headers["content-type"] = content_type
    delivery = Delivery(
        endpoint="/events/cloudevents",
        headers=all_headers,
        body=json.dumps(payload).encode(),
        received_at=received,
    )
    return parse_cloudevents(delivery, payload)


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


def of_kind(result: ParseResult, kind: str) -> list[ArtifactEvent]:
    return [e for e in result.events if e.kind == kind]


def minimal_deployment(**data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:test",
        "type": "dev.linkedartifacts.deployment.v1",
        "data": {"digest": AMD64, "environment": "prod", "deployment_name": "web", **data},
    }


# --- structured mode ---------------------------------------------------------------------------------------


def test_structured_running_container_becomes_deployed_event_keyed_by_subject_digest() -> None:
    result = deliver(load("structured_container_running.json"))

    [event] = of_kind(result, "deployment")
    body = event.deployment
    assert body is not None
    assert event.key == event.digest == INDEX
    assert event.source == "cloudevents"
    assert event.event_time == datetime(2026, 5, 5, 10, 25, 1, tzinfo=UTC)
    assert event.ingest_time == RECEIVED
    assert body.status == "deployed"
    assert body.logical_environment == "prod"
    assert body.physical_environment == "westeurope"
    assert body.cluster == "aks-prod-weu-1"
    assert body.deployment_name == "payments-payments-api-app"
    assert body.workload == "Deployment/payments-api"
    assert body.runtime_risks == ["internet-exposed", "sensitive-data"]
    assert body.risks_asserted_by == "k8s://aks-prod-weu-1"
    assert (body.name, body.version) == ("acme/payments-api", "1.42.0")


def test_image_ref_is_recorded_as_an_observed_storage_location() -> None:
    result = deliver(load("structured_container_running.json"))

    [event] = of_kind(result, "storage")
    assert event.storage is not None
    assert event.key == INDEX
    assert event.storage.action == "observed"
    assert (event.storage.registry, event.storage.registry_url, event.storage.repository) == (
        "ghcr.io",
        "https://ghcr.io/",
        "acme/payments-api",
    )
    assert event.storage.tags == ["1.42.0"]


def test_resent_duplicate_has_the_same_event_ids() -> None:
    first = deliver(load("structured_container_running.json"))
    again = deliver(load("structured_container_running.json"), received=datetime(2026, 6, 1, tzinfo=UTC))

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_same_id_from_another_source_is_another_event() -> None:
    event = load("structured_container_running.json")
    other = dict(event, source="k8s://aks-prod-weu-2")

    assert deliver(event).events[0].event_id != deliver(other).events[0].event_id


def test_data_base64_is_decoded_as_json() -> None:
    result = deliver(load("structured_data_base64.json"))

    [event] = of_kind(result, "deployment")
    assert event.deployment is not None
    assert event.digest == WORKER
    assert event.deployment.deployment_name == "workers-queue-worker-worker"
    assert event.deployment.workload == "StatefulSet/queue-worker"
    assert event.event_time == datetime(2026, 5, 8, 5, 30, tzinfo=UTC)
    [observed] = of_kind(result, "storage")
    assert observed.storage is not None
    assert (observed.storage.registry, observed.storage.repository) == ("docker.io", "library/python")


def test_plain_json_content_type_reads_an_object_as_one_event() -> None:
    result = deliver(load("structured_container_running.json"), content_type="application/json")

    assert len(of_kind(result, "deployment")) == 1


def test_event_without_time_uses_the_receipt_time() -> None:
    event = minimal_deployment()

    assert deliver(event).events[0].event_time == RECEIVED


def test_digest_pinned_in_image_ref_is_used_when_no_digest_field() -> None:
    event = minimal_deployment(image_ref=f"ghcr.io/acme/web@{ARM64}")
    del event["data"]["digest"]

    [deployment] = of_kind(deliver(event), "deployment")
    assert deployment.digest == ARM64


# --- batch mode --------------------------------------------------------------------------------------------


def test_batch_yields_events_of_every_supported_type() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    kinds = sorted(e.kind for e in result.events)
    assert kinds == ["deployment", "deployment", "deployment", "link", "link", "link", "link", "storage"]


def test_deployment_event_normalises_bare_hex_digest_and_keeps_tags() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    deployed = next(
        e for e in of_kind(result, "deployment") if e.deployment and e.deployment.version == "3.1.0"
    )
    assert deployed.deployment is not None
    assert deployed.key == deployed.digest == AMD64
    assert deployed.deployment.tags == {"team": "checkout", "data-classification": "pci"}
    assert deployed.deployment.github_repository == "acme/checkout-web"
    assert deployed.deployment.risks_asserted_by == "https://runtime.acme.example/monitor"
    [observed] = of_kind(result, "storage")
    assert observed.storage is not None
    assert observed.storage.registry_url == "https://registry.acme.example:5000/"
    assert observed.storage.repository == "acme/checkout-web"


def test_runtime_risk_event_asserts_risks_for_the_slot_and_digest() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    risk = next(
        e
        for e in of_kind(result, "deployment")
        if e.deployment and e.deployment.risks_asserted_by == "defender-for-cloud"
    )
    assert risk.deployment is not None
    assert risk.digest == AMD64
    assert risk.deployment.status == "deployed"
    assert risk.deployment.deployment_name == "checkout-web"
    assert risk.deployment.runtime_risks == ["critical-resource", "internet-exposed"]


def test_decommission_naming_only_the_slot_is_keyed_by_the_slot() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    [decommission] = [
        e for e in of_kind(result, "deployment") if e.deployment and e.deployment.status == "decommissioned"
    ]
    assert decommission.digest is None
    assert decommission.key == slot_key("staging", "", "eks-stg-use1", "jobs-nightly-report-report")
    assert decommission.deployment is not None
    assert decommission.deployment.risks_asserted_by is None
    assert decommission.event_time == datetime(2026, 5, 7, 12, 0, tzinfo=UTC)


def test_decommission_with_a_digest_is_keyed_by_the_digest() -> None:
    event = minimal_deployment()
    event["type"] = "dev.linkedartifacts.decommission.v1"

    [decommission] = deliver(event).events
    assert decommission.key == decommission.digest == AMD64
    assert decommission.deployment is not None
    assert decommission.deployment.status == "decommissioned"


def test_image_index_yields_a_link_under_each_digest_of_each_pair() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    links = of_kind(result, "link")
    assert {(e.key, e.link.platform_digest, e.link.platform) for e in links if e.link} == {
        (INDEX, AMD64, "linux/amd64"),
        (AMD64, AMD64, "linux/amd64"),
        (INDEX, ARM64, "linux/arm64/v8"),
        (ARM64, ARM64, "linux/arm64/v8"),
    }
    assert all(e.link is not None and e.link.index_digest == INDEX for e in links)
    assert all(e.digest == e.key for e in links)
    assert len({e.event_id for e in links}) == 4


def test_every_event_of_a_batch_has_a_distinct_id() -> None:
    result = deliver(load("batch_runtime_monitor.json"))

    assert len({e.event_id for e in result.events}) == len(result.events)


def test_a_batch_hashes_its_body_once_for_all_its_events(monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    hashed: list[int] = []
    real = hashlib.sha256

    def counting(data: bytes) -> Any:
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(hashlib, "sha256", counting)  # event ids are hashes too: count the body's only
    payload = load("batch_runtime_monitor.json")
    result = deliver(payload)
    body = json.dumps(payload).encode()
    assert len(result.events) == 8
    assert {e.delivery_id for e in result.events} == {real(body).hexdigest()}
    assert hashed.count(len(body)) == 1


def test_empty_batch_is_acknowledged_and_ignored() -> None:
    result = deliver([])

    assert result.events == ()
    assert result.ignored


# --- malformed input ---------------------------------------------------------------------------------------


def test_one_bad_event_rejects_the_whole_batch_naming_its_index() -> None:
    batch = load("batch_runtime_monitor.json")
    batch[3]["specversion"] = "0.3"

    error = expect_error(batch)

    assert (error.status, error.code, error.field) == (422, "unsupported_version", "[3].specversion")
    assert error.message.startswith("[3].specversion:")


def test_unknown_type_is_rejected_as_unsupported_event() -> None:
    event = minimal_deployment()
    event["type"] = "com.example.something.v1"

    error = expect_error(event)

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "type")


@pytest.mark.parametrize("attribute", ["id", "source", "type", "specversion"])
def test_missing_required_attribute_is_named(attribute: str) -> None:
    event = minimal_deployment()
    del event[attribute]

    error = expect_error(event)

    assert (error.status, error.field) == (422, attribute)


def test_missing_digest_names_data_digest_with_a_hint() -> None:
    event = minimal_deployment()
    del event["data"]["digest"]

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data.digest")
    assert "subject" in error.message


def test_invalid_digest_in_a_batch_names_the_nested_path() -> None:
    batch = load("batch_runtime_monitor.json")
    batch[3]["data"]["manifests"][1]["digest"] = "sha256:nothex"

    error = expect_error(batch)

    assert (error.status, error.field) == (422, "[3].data.manifests[1].digest")


def test_unknown_runtime_risk_is_rejected_naming_its_index() -> None:
    error = expect_error(minimal_deployment(runtime_risks=["internet-exposed", "spooky"]))

    assert (error.status, error.field) == (422, "data.runtime_risks[1]")


def test_slot_without_name_or_parts_to_derive_it_is_rejected() -> None:
    event = minimal_deployment(namespace="ns")
    del event["data"]["deployment_name"]

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data.deployment_name")


def test_missing_environment_is_rejected() -> None:
    event = minimal_deployment()
    del event["data"]["environment"]

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data.logical_environment")


def test_runtime_risk_event_without_risks_is_rejected() -> None:
    event = minimal_deployment()
    event["type"] = "dev.linkedartifacts.runtime-risk.v1"

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data.runtime_risks")


@pytest.mark.parametrize(
    "encoded",
    [
        "%%%not-base64%%%",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b"[1, 2]").decode(),
    ],
)
def test_data_base64_that_is_not_a_json_object_is_rejected(encoded: str) -> None:
    event = load("structured_data_base64.json")
    event["data_base64"] = encoded

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data_base64")


def test_data_that_is_not_an_object_is_rejected() -> None:
    event = minimal_deployment()
    event["data"] = "digest=sha256:..."

    error = expect_error(event)

    assert (error.status, error.field) == (422, "data")


def test_batch_content_type_with_an_object_is_a_400() -> None:
    error = expect_error(load("structured_container_running.json"), content_type=BATCH_CONTENT_TYPE)

    assert (error.status, error.field) == (400, "$")


def test_structured_content_type_with_an_array_is_a_400() -> None:
    error = expect_error([minimal_deployment()], content_type=STRUCTURED_CONTENT_TYPE)

    assert (error.status, error.field) == (400, "$")


def test_batch_item_that_is_not_an_object_is_a_400_naming_its_index() -> None:
    error = expect_error([minimal_deployment(), "oops"])

    assert (error.status, error.field) == (400, "[1]")


def test_binary_mode_is_refused_with_a_hint() -> None:
    error = expect_error(
        {"digest": AMD64}, content_type="application/json", headers={"ce-specversion": "1.0"}
    )

    assert (error.status, error.code) == (422, "unsupported_mode")
    assert STRUCTURED_CONTENT_TYPE in error.message


def test_bad_time_is_rejected_naming_time() -> None:
    event = minimal_deployment()
    event["time"] = "last tuesday"

    error = expect_error(event)

    assert (error.status, error.field) == (422, "time")


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
    ["structured_container_running.json", "batch_runtime_monitor.json", "structured_data_base64.json"],
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_parsed_or_refused_with_an_input_error(fixture: str, data: st.DataObject) -> None:
    payload = data.draw(mutations(load(fixture)))
    try:
        result = deliver(payload, content_type="application/json")
    except InputError as error:
        assert error.status in (400, 422)
        assert error.field
    else:
        assert isinstance(result, ParseResult)


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-01:00", 10**20, 1714900000])
def test_out_of_range_or_numeric_time_is_a_422_not_a_crash(time: Any) -> None:
    event = minimal_deployment()
    event["time"] = time

    error = expect_error(event)

    assert (error.status, error.field) == (422, "time")
