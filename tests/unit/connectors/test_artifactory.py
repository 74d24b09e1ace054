from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.artifactory import UNKNOWN_REGISTRY_URL, parse_artifactory

PAYLOADS = Path(__file__).parent / "payloads" / "artifactory"
RECEIVED = datetime(2026, 5, 5, 12, 45, tzinfo=UTC)
SINGLE = "sha256:947f187506f7629c81c81879a2cb2256455038e4ac770091d897fa0a8b945e3b"
INDEX = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
AMD64 = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
ARM64 = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
JAR = "sha256:0163f1eea7894350060624d315234d40c508ab251ba121714e234503045faadd"
JAR_PATH = "com/acme/payments/payments-core/5.2.0/payments-core-5.2.0.jar"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def deliver(payload: Any, *, body: bytes | None = None) -> ParseResult:
    raw = body if body is not None else json.dumps(payload).encode()
    delivery = Delivery(
        endpoint="/v1/sources/artifactory",
        headers={"x-jfrog-event-auth": "redacted", "content-type": "application/json"},
        body=raw,
        received_at=RECEIVED,
    )
    return parse_artifactory(delivery, payload)


def expect_error(payload: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload)
    return caught.value


# --- docker ---------------------------------------------------------------------------------------------


def test_single_platform_docker_push_becomes_active_storage_with_tag() -> None:
    result = deliver(load("docker_pushed_single.json"))

    assert len(result.events) == 1
    event = result.events[0]
    assert event.kind == "storage"
    assert event.key == event.digest == SINGLE
    assert event.source == "artifactory"
    assert event.ingest_time == RECEIVED
    storage = event.storage
    assert storage is not None
    assert storage.registry == "jfrog-artifactory"
    assert storage.registry_url == "https://acme.jfrog.io/artifactory/"
    assert storage.repository == "docker-dev-local"
    assert storage.path == "acme/ledger-worker/2.7.1/manifest.json"
    assert storage.artifact_url == (
        "https://acme.jfrog.io/artifactory/docker-dev-local/acme/ledger-worker/2.7.1/manifest.json"
    )
    assert storage.name == "acme/ledger-worker"
    assert storage.tags == ["2.7.1"]
    assert storage.status == "active"
    assert storage.action == "pushed"
    assert storage.size == 1782
    assert result.note is None


def test_manifest_list_push_links_index_and_platform_digests_both_ways() -> None:
    result = deliver(load("docker_pushed_index.json"))

    storage = [e for e in result.events if e.kind == "storage"]
    links = [e for e in result.events if e.kind == "link"]
    assert [e.digest for e in storage] == [INDEX]
    assert sorted((e.key, e.link.platform_digest) for e in links if e.link) == sorted(
        [(INDEX, AMD64), (AMD64, AMD64), (INDEX, ARM64), (ARM64, ARM64)]
    )
    assert all(e.link is not None and e.link.index_digest == INDEX for e in links)
    assert all(e.key == e.digest for e in links)
    platforms = {e.link.platform_digest: e.link.platform for e in links if e.link}
    assert platforms == {AMD64: "linux/amd64", ARM64: "linux/arm64/v8"}
    assert len({e.event_id for e in result.events}) == len(result.events) == 5


def test_bare_hex_sha256_is_normalised_to_prefixed_lowercase() -> None:
    event = deliver(load("docker_pushed_index.json")).events[0]

    assert event.digest == INDEX


def test_envelope_id_is_the_delivery_id_and_its_ulid_time_the_event_time() -> None:
    result = deliver(load("docker_pushed_index.json"))

    assert {e.delivery_id for e in result.events} == {"01KQVTHRGDH3XM1WZZF8910TRA"}
    assert {e.event_time for e in result.events} == {datetime(2026, 5, 5, 10, 22, 13, 517000, tzinfo=UTC)}


def test_without_envelope_id_the_body_hash_is_the_delivery_id_and_event_time_is_receive_time() -> None:
    payload = load("docker_pushed_single.json")
    body = json.dumps(payload).encode()

    event = deliver(payload, body=body).events[0]

    assert event.delivery_id == hashlib.sha256(body).hexdigest()
    assert event.event_time == RECEIVED


@pytest.mark.parametrize(
    "source_id",
    [
        "7ZZZZZZZZZH3XM1WZZF8910TRA",  # a ULID far in the future
        "00000000000000000000000000",  # a ULID at the epoch
        "3b4308ed-4983-4313-bd8b-782ad457862d",  # not a ULID at all
    ],
)
def test_id_that_is_not_a_plausible_ulid_is_not_trusted_as_event_time(source_id: str) -> None:
    payload = load("docker_pushed_index.json")
    payload["id"] = source_id

    event = deliver(payload).events[0]

    assert event.event_time == RECEIVED
    assert event.delivery_id == source_id


def test_redelivery_produces_identical_event_ids() -> None:
    payload = load("docker_pushed_single.json")
    body = json.dumps(payload).encode()

    first = deliver(payload, body=body)
    again = deliver(json.loads(body), body=body)

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_docker_tag_deleted_marks_location_deleted_without_links() -> None:
    payload = load("docker_pushed_index.json")
    payload["event_type"] = payload["data"]["event_type"] = "deleted"

    result = deliver(payload)

    assert [e.kind for e in result.events] == ["storage"]
    assert result.events[0].storage is not None
    assert result.events[0].storage.status == "deleted"
    assert result.events[0].storage.action == "deleted"


def test_docker_promotion_activates_target_and_names_the_source() -> None:
    event = deliver(load("docker_promoted.json")).events[0]

    storage = event.storage
    assert storage is not None
    assert storage.action == "promoted"
    assert storage.status == "active"
    assert storage.repository == "docker-prod-local"
    assert storage.path == "acme/payments-api/1.42.0/list.manifest.json"
    assert storage.previous_repository == "docker-staging-local"
    assert storage.previous_path == "acme/payments-api/1.42.0/list.manifest.json"


def test_docker_promotion_without_source_or_target_fields_keeps_the_reported_location() -> None:
    payload = load("docker_promoted.json")
    del payload["data"]["source_repo_key"], payload["data"]["target_repo_key"]

    storage = deliver(payload).events[0].storage

    assert storage is not None
    assert (storage.repository, storage.previous_repository) == ("docker-staging-local", None)


def test_platform_without_os_or_architecture_links_with_no_platform_label() -> None:
    payload = load("docker_pushed_index.json")
    payload["data"]["platforms"] = [{"digest": AMD64}]

    links = [e for e in deliver(payload).events if e.kind == "link"]

    assert len(links) == 2
    assert all(e.link is not None and e.link.platform is None for e in links)


def test_bad_platform_digest_is_rejected_naming_the_entry() -> None:
    payload = load("docker_pushed_index.json")
    payload["data"]["platforms"][1]["sha256"] = "f6916295"

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "invalid_digest", "data.platforms[1].sha256")


# --- artifacts ------------------------------------------------------------------------------------------


def test_artifact_deployed_with_origin_already_ending_in_artifactory() -> None:
    event = deliver(load("artifact_deployed.json")).events[0]

    storage = event.storage
    assert storage is not None
    assert event.digest == JAR
    assert storage.registry_url == "https://acme.jfrog.io/artifactory/"
    assert (storage.repository, storage.path) == ("libs-staging-local", JAR_PATH)
    assert storage.name == "payments-core-5.2.0.jar"
    assert storage.tags == []
    assert storage.action == "deployed"


def test_move_activates_target_and_retires_source_in_one_event() -> None:
    result = deliver(load("artifact_moved.json"))

    assert len(result.events) == 1
    storage = result.events[0].storage
    assert storage is not None
    assert storage.action == "moved"
    assert storage.status == "active"
    assert (storage.repository, storage.path) == ("libs-release-local", JAR_PATH)
    assert (storage.previous_repository, storage.previous_path) == ("libs-staging-local", JAR_PATH)
    assert storage.artifact_url == f"https://acme.jfrog.io/artifactory/libs-release-local/{JAR_PATH}"


def test_move_with_bare_repository_keys_keeps_the_path() -> None:
    payload = load("artifact_moved.json")
    payload["data"]["source_repo_path"] = "libs-staging-local"
    payload["data"]["target_repo_path"] = "libs-release-local"

    storage = deliver(payload).events[0].storage

    assert storage is not None
    assert (storage.repository, storage.path) == ("libs-release-local", JAR_PATH)
    assert (storage.previous_repository, storage.previous_path) == ("libs-staging-local", JAR_PATH)


def test_move_into_a_folder_keeps_the_file_name() -> None:
    payload = load("artifact_moved.json")
    payload["data"]["target_repo_path"] = "libs-archive-local/2026/"

    storage = deliver(payload).events[0].storage

    assert storage is not None
    assert (storage.repository, storage.path) == ("libs-archive-local", "2026/payments-core-5.2.0.jar")


def test_copy_adds_an_active_location_and_leaves_the_source_alone() -> None:
    storage = deliver(load("artifact_copied.json")).events[0].storage

    assert storage is not None
    assert storage.action == "copied"
    assert storage.status == "active"
    assert (storage.repository, storage.path) == ("libs-release-dr", JAR_PATH)
    assert storage.previous_repository is None
    assert storage.previous_path is None


def test_move_without_target_is_rejected_naming_the_field() -> None:
    payload = load("artifact_moved.json")
    del payload["data"]["target_repo_path"]

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "data.target_repo_path")


def test_artifact_deleted_marks_location_deleted() -> None:
    storage = deliver(load("artifact_deleted.json")).events[0].storage

    assert storage is not None
    assert (storage.status, storage.action) == ("deleted", "deleted")


def test_stringified_data_and_event_wrapper_from_the_jfrog_examples_are_accepted() -> None:
    payload = load("artifact_deployed.json")
    wrapped = {"event": {**payload, "id": "01KQW04SG0H3XM1WZZF8910TRA", "data": json.dumps(payload["data"])}}

    event = deliver(wrapped).events[0]

    assert event.digest == JAR
    assert event.delivery_id == "01KQW04SG0H3XM1WZZF8910TRA"


# --- registry URL rule ----------------------------------------------------------------------------------


def test_missing_jpd_origin_records_unknown_registry_url_and_says_so() -> None:
    payload = load("docker_pushed_single.json")
    del payload["jpd_origin"]

    result = deliver(payload)

    storage = result.events[0].storage
    assert storage is not None
    assert storage.registry_url == UNKNOWN_REGISTRY_URL
    assert storage.artifact_url is None
    assert result.note is not None and "jpd_origin" in result.note


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://acme.jfrog.io", "https://acme.jfrog.io/artifactory/"),
        ("https://ACME.jfrog.io//", "https://acme.jfrog.io/artifactory/"),
        ("https://acme.jfrog.io/artifactory/", "https://acme.jfrog.io/artifactory/"),
        ("https://tools.acme.internal/jfrog", "https://tools.acme.internal/jfrog/artifactory/"),
    ],
)
def test_registry_url_is_origin_plus_artifactory(origin: str, expected: str) -> None:
    payload = load("docker_pushed_single.json")
    payload["jpd_origin"] = origin

    storage = deliver(payload).events[0].storage

    assert storage is not None
    assert storage.registry_url == expected


def test_non_url_jpd_origin_is_rejected() -> None:
    payload = load("docker_pushed_single.json")
    payload["jpd_origin"] = "acme.jfrog.io"

    assert expect_error(payload).field == "jpd_origin"


# --- domains, event types, malformed input --------------------------------------------------------------


def test_deliberately_unhandled_domain_is_ignored() -> None:
    result = deliver(load("build_uploaded.json"))

    assert result.ignored is True
    assert result.events == ()


def test_unknown_domain_is_a_422_unsupported_event() -> None:
    payload = load("artifact_deployed.json")
    payload["domain"] = "not_supported"

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "domain")


def test_unknown_event_type_is_a_422_unsupported_event() -> None:
    payload = load("artifact_deployed.json")
    payload["event_type"] = "cached"

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "event_type")


def test_event_type_falls_back_to_the_one_inside_docker_data() -> None:
    payload = load("docker_pushed_single.json")
    del payload["event_type"]

    assert deliver(payload).events[0].digest == SINGLE


@pytest.mark.parametrize("field", ["sha256", "repo_key", "path"])
def test_missing_data_field_is_rejected_naming_it(field: str) -> None:
    payload = load("artifact_deployed.json")
    del payload["data"][field]

    error = expect_error(payload)

    assert (error.status, error.field) == (422, f"data.{field}")


def test_placeholder_checksum_is_rejected_as_invalid_digest() -> None:
    payload = load("artifact_deployed.json")
    payload["data"]["sha256"] = "sample_checksum"

    error = expect_error(payload)

    assert (error.code, error.field) == ("invalid_digest", "data.sha256")


def test_size_of_wrong_type_is_rejected() -> None:
    payload = load("artifact_deployed.json")
    payload["data"]["size"] = "188321"

    assert expect_error(payload).field == "data.size"


def test_missing_data_is_rejected() -> None:
    payload = load("artifact_deployed.json")
    del payload["data"]

    assert expect_error(payload).field == "data"


def test_stringified_data_that_is_not_json_is_rejected() -> None:
    payload = load("artifact_deployed.json")
    payload["data"] = "{not json"

    assert expect_error(payload).field == "data"


def test_missing_domain_is_rejected() -> None:
    payload = load("artifact_deployed.json")
    del payload["domain"]

    assert expect_error(payload).field == "domain"


def test_stringified_data_nested_too_deep_is_refused_naming_data() -> None:
    payload = load("artifact_deployed.json")
    payload["data"] = "[" * 40 + "]" * 40

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "too_deep", "data")
