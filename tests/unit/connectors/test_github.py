from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources import github
from connectors.sources.github import parse_github, repository_from_url
from linked_artifacts.events import run_key

PAYLOADS = Path(__file__).parent / "payloads" / "github"
RECEIVED = datetime(2026, 5, 5, 10, 30, tzinfo=UTC)
DELIVERY_ID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
SINGLE = "sha256:947f187506f7629c81c81879a2cb2256455038e4ac770091d897fa0a8b945e3b"
INDEX = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
AMD64 = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
ARM64 = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def deliver(
    payload: Any, *, event: str | None = "registry_package", delivery_id: str | None = DELIVERY_ID
) -> ParseResult:
    headers = {"user-agent": "GitHub-Hookshot/7e3b1a2"}
    if event is not None:
        headers["x-github-event"] = event
    if delivery_id is not None:
        headers["x-github-delivery"] = delivery_id
    body = json.dumps(payload).encode()
    delivery = Delivery(endpoint="/v1/sources/github", headers=headers, body=body, received_at=RECEIVED)
    return parse_github(delivery, payload)


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


# --- container packages ---------------------------------------------------------------------------------


def test_single_platform_push_becomes_ghcr_storage_event_with_tag_observation() -> None:
    result = deliver(load("registry_package_published_single.json"))

    storage_events = [e for e in result.events if e.kind == "storage"]
    assert len(storage_events) == 1
    event = storage_events[0]
    assert event.key == event.digest == SINGLE
    assert event.source == "github"
    assert event.delivery_id == DELIVERY_ID
    assert event.ingest_time == RECEIVED
    assert event.event_time == datetime(2026, 5, 5, 10, 21, 2, tzinfo=UTC)
    assert event.storage is not None
    assert event.storage.registry == "ghcr"
    assert event.storage.registry_url == "https://ghcr.io/"
    assert event.storage.repository == "acme/ledger-worker"
    assert event.storage.name == "ghcr.io/acme/ledger-worker"
    assert event.storage.tags == ["2.7.1"]
    assert event.storage.status == "active"
    assert event.storage.action == "published"
    assert event.storage.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert event.storage.size == 1782
    assert event.storage.github_repository == "acme/ledger-worker"
    assert event.storage.version is None


def test_oci_revision_and_source_labels_emit_a_build_event_for_the_digest() -> None:
    result = deliver(load("registry_package_published_single.json"))

    builds = [e for e in result.events if e.kind == "build"]
    assert len(builds) == 1
    assert builds[0].key == builds[0].digest == SINGLE
    assert builds[0].build is not None
    assert builds[0].build.commit == "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"
    assert builds[0].build.repository == "acme/ledger-worker"


def test_revision_label_that_is_not_a_commit_sha_gives_no_build_event() -> None:
    payload = load("registry_package_published_single.json")
    labels = payload["registry_package"]["package_version"]["container_metadata"]["labels"]
    labels["all_labels"]["org.opencontainers.image.revision"] = "main"
    labels["revision"] = "main"

    result = deliver(payload)

    assert [e.kind for e in result.events] == ["storage"]


def test_source_label_outside_github_is_kept_as_url() -> None:
    payload = load("registry_package_published_single.json")
    labels = payload["registry_package"]["package_version"]["container_metadata"]["labels"]["all_labels"]
    labels["org.opencontainers.image.source"] = "https://gitlab.example.com/acme/ledger-worker.git"

    build = next(e for e in deliver(payload).events if e.kind == "build")

    assert build.build is not None
    assert build.build.repository == "https://gitlab.example.com/acme/ledger-worker"


def test_multi_arch_push_gives_one_storage_event_per_manifest_delivery() -> None:
    deliveries = [
        ("registry_package_published_platform_amd64.json", "0b1c55e0-48a2-11f1-8a5e-1f0e1c7b2a01"),
        ("registry_package_published_platform_arm64.json", "0b1c55e0-48a2-11f1-8a5e-1f0e1c7b2a02"),
        ("registry_package_published_index.json", "0b1c55e0-48a2-11f1-8a5e-1f0e1c7b2a03"),
    ]

    storage = [
        e
        for name, delivery_id in deliveries
        for e in deliver(load(name), delivery_id=delivery_id).events
        if e.kind == "storage"
    ]

    assert [e.digest for e in storage] == [AMD64, ARM64, INDEX]
    assert all(e.storage is not None and e.storage.repository == "acme/payments-api" for e in storage)
    tags = {e.digest: e.storage.tags for e in storage if e.storage is not None}
    assert tags == {AMD64: [], ARM64: [], INDEX: ["1.42.0"]}
    assert len({e.event_id for e in storage}) == 3


def test_untagged_platform_push_trims_package_url_colon() -> None:
    event = deliver(load("registry_package_published_platform_arm64.json")).events[0]

    assert event.storage is not None
    assert event.storage.name == "ghcr.io/acme/payments-api"
    assert event.storage.tags == []
    assert event.storage.media_type == "application/vnd.oci.image.manifest.v1+json"


def test_tag_comes_from_package_url_when_container_metadata_has_no_tag() -> None:
    payload = load("registry_package_published_single.json")
    del payload["registry_package"]["package_version"]["container_metadata"]["tag"]

    event = deliver(payload).events[0]

    assert event.storage is not None
    assert event.storage.tags == ["2.7.1"]


def test_package_event_shape_is_parsed_like_registry_package() -> None:
    payload = load("registry_package_published_single.json")
    payload["package"] = payload.pop("registry_package")

    result = deliver(payload, event="package")

    assert result.events[0].digest == SINGLE
    assert result.events[0].storage is not None
    assert result.events[0].storage.registry == "ghcr"


def test_updated_action_is_recorded_as_updated() -> None:
    payload = load("registry_package_published_single.json")
    payload["action"] = "updated"

    event = deliver(payload).events[0]

    assert event.storage is not None
    assert event.storage.action == "updated"


def test_legacy_docker_registry_is_github_packages() -> None:
    payload = load("registry_package_published_single.json")
    package = payload["registry_package"]
    package["package_type"] = package["ecosystem"] = "docker"
    package["registry"] = {"type": "docker", "url": "https://docker.pkg.github.com/acme"}
    package["package_version"]["package_url"] = "docker.pkg.github.com/acme/ledger-worker/ledger-worker:2.7.1"

    event = deliver(payload).events[0]

    assert event.storage is not None
    assert event.storage.registry == "github-packages"
    assert event.storage.registry_url == "https://docker.pkg.github.com/"
    assert event.storage.repository == "acme/ledger-worker/ledger-worker"


def test_go_zero_timestamps_are_skipped_for_event_time() -> None:
    payload = load("registry_package_published_single.json")
    version = payload["registry_package"]["package_version"]
    version["created_at"] = version["updated_at"] = "0001-01-01T00:00:00Z"

    event = deliver(payload).events[0]

    assert event.event_time == datetime(2026, 5, 5, 10, 21, 3, tzinfo=UTC)


def test_redelivery_produces_identical_event_ids() -> None:
    payload = load("registry_package_published_single.json")

    first = deliver(payload)
    again = deliver(json.loads(json.dumps(payload)))

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert len({e.event_id for e in first.events}) == len(first.events) == 2


def test_distinct_deliveries_of_the_same_content_get_distinct_event_ids() -> None:
    payload = load("registry_package_published_single.json")

    first = deliver(payload, delivery_id="11111111-0000-0000-0000-000000000001")
    second = deliver(payload, delivery_id="11111111-0000-0000-0000-000000000002")

    assert {e.event_id for e in first.events}.isdisjoint(e.event_id for e in second.events)


def test_irrelevant_package_action_is_ignored() -> None:
    payload = load("registry_package_published_single.json")
    payload["action"] = "deleted"

    result = deliver(payload)

    assert result.ignored is True
    assert result.events == ()
    assert result.note is not None and "deleted" in result.note


# --- other ecosystems -----------------------------------------------------------------------------------


def test_npm_package_file_sha256_becomes_storage_event() -> None:
    result = deliver(load("package_published_npm.json"), event="package")

    assert len(result.events) == 1
    event = result.events[0]
    assert event.digest == "sha256:743ba6ad561499f64199d1995b72fd04d576640b01f09a588a5db8101ab2337d"
    assert event.storage is not None
    assert event.storage.registry == "github-packages"
    assert event.storage.registry_url == "https://npm.pkg.github.com/"
    assert event.storage.repository == "acme/checkout-sdk"
    assert event.storage.path == "checkout-sdk-3.8.0.tgz"
    assert event.storage.version == "3.8.0"
    assert event.storage.size == 48213
    # The pre-signed download URL carries a signature; it must not be stored.
    assert event.storage.artifact_url == "https://github.com/acme/checkout-sdk/packages/22841?version=3.8.0"


def test_package_without_any_digest_is_ignored_not_rejected() -> None:
    result = deliver(load("package_published_maven_no_digest.json"), event="package")

    assert result.ignored is True
    assert result.events == ()
    assert result.note is not None and "sha256" in result.note


def test_malformed_package_file_sha256_is_rejected_naming_the_file() -> None:
    payload = load("package_published_npm.json")
    payload["package"]["package_version"]["package_files"][0]["sha256"] = "not-a-digest"

    error = expect_error(payload, event="package")

    assert error.status == 422
    assert error.code == "invalid_digest"
    assert error.field == "package.package_version.package_files[0].sha256"


# --- workflow runs --------------------------------------------------------------------------------------


def test_workflow_run_completed_becomes_run_keyed_build_event() -> None:
    result = deliver(load("workflow_run_completed.json"), event="workflow_run")

    assert len(result.events) == 1
    event = result.events[0]
    assert event.kind == "build"
    assert event.key == "run:acme/payments-api/12345678901"
    assert event.digest is None
    assert event.event_time == datetime(2026, 5, 5, 10, 19, 44, tzinfo=UTC)
    build = event.build
    assert build is not None
    assert build.workflow_run_id == 12345678901
    assert build.run_attempt == 2
    assert build.status == "completed"
    assert build.conclusion == "success"
    assert build.commit == "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    assert build.ref == "main"
    assert build.repository == "acme/payments-api"
    assert build.run_url == "https://github.com/acme/payments-api/actions/runs/12345678901"
    assert build.workflow_name == "release"
    assert build.workflow_path == ".github/workflows/release.yml"


@pytest.mark.parametrize("action", ["requested", "in_progress"])
def test_workflow_run_progress_actions_become_build_events(action: str) -> None:
    payload = load("workflow_run_completed.json")
    payload["action"] = action
    payload["workflow_run"]["status"] = action
    payload["workflow_run"]["conclusion"] = None

    event = deliver(payload, event="workflow_run").events[0]

    assert event.build is not None
    assert event.build.status == action
    assert event.build.conclusion is None


def test_run_key_ignores_repository_case() -> None:
    assert run_key("Acme/Payments-API", 7) == run_key("acme/payments-api", 7) == "run:acme/payments-api/7"


def test_workflow_run_with_string_id_is_rejected_naming_the_field() -> None:
    payload = load("workflow_run_completed.json")
    payload["workflow_run"]["id"] = "12345678901"

    error = expect_error(payload, event="workflow_run")

    assert (error.status, error.field) == (422, "workflow_run.id")


def test_workflow_run_without_workflow_run_object_is_rejected() -> None:
    payload = load("workflow_run_completed.json")
    del payload["workflow_run"]

    error = expect_error(payload, event="workflow_run")

    assert (error.status, error.field) == (422, "workflow_run")


# --- envelope: headers, ping, unknown events, alerts -----------------------------------------------------


def test_ping_is_acknowledged_and_ignored_even_without_delivery_id() -> None:
    result = deliver(load("ping.json"), event="ping", delivery_id=None)

    assert result.ignored is True
    assert result.events == ()


def test_missing_delivery_header_is_a_400_naming_the_header() -> None:
    error = expect_error(load("registry_package_published_single.json"), delivery_id=None)

    assert error.status == 400
    assert error.field == "X-GitHub-Delivery"


def test_missing_event_header_is_a_400_naming_the_header() -> None:
    error = expect_error(load("registry_package_published_single.json"), event=None)

    assert error.status == 400
    assert error.field == "X-GitHub-Event"


def test_unknown_event_type_is_a_422_unsupported_event() -> None:
    error = expect_error({"action": "opened"}, event="issues")

    assert error.status == 422
    assert error.code == "unsupported_event"
    assert error.field == "X-GitHub-Event"


def test_body_that_is_not_an_object_is_rejected() -> None:
    error = expect_error(["not", "an", "object"])

    assert (error.status, error.field) == (422, "body")


def test_missing_container_digest_is_rejected_naming_the_version() -> None:
    payload = load("registry_package_published_single.json")
    version = payload["registry_package"]["package_version"]
    del version["version"], version["name"]
    del version["container_metadata"]["manifest"]["digest"]

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "registry_package.package_version.version")


def test_bad_container_digest_is_rejected_as_invalid_digest() -> None:
    payload = load("registry_package_published_single.json")
    version = payload["registry_package"]["package_version"]
    version["version"] = version["name"] = "sha256:6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"
    version["container_metadata"]["manifest"]["digest"] = "sha256:6c62fb45"

    error = expect_error(payload)

    assert error.code == "invalid_digest"
    assert error.field == "registry_package.package_version.version"


def test_container_digest_falls_back_to_manifest_digest_when_version_is_a_tag() -> None:
    payload = load("registry_package_published_single.json")
    version = payload["registry_package"]["package_version"]
    version["version"] = version["name"] = "2.7.1"

    assert deliver(payload).events[0].digest == SINGLE


def test_missing_action_is_rejected_naming_the_field() -> None:
    payload = load("registry_package_published_single.json")
    del payload["action"]

    assert expect_error(payload).field == "action"


def test_wrong_type_for_package_version_is_rejected() -> None:
    payload = load("registry_package_published_single.json")
    payload["registry_package"]["package_version"] = "sha256:abc"

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "registry_package.package_version")


@pytest.mark.parametrize("event", ["dependabot_alert", "code_scanning_alert"])
def test_alert_events_are_delegated_to_the_alerts_parser(event: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Delivery, Any]] = []
    answer = ParseResult(ignored=True, note="delegated")

    def fake_parse_github_alert(delivery: Delivery, payload: Any) -> ParseResult:
        seen.append((delivery, payload))
        return answer

    monkeypatch.setattr(github, "parse_github_alert", fake_parse_github_alert)
    payload = {"action": "created", "alert": {"number": 42}}

    result = deliver(payload, event=event)

    assert result is answer
    assert seen[0][1] == payload
    assert seen[0][0].header("X-GitHub-Event") == event


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/payments-api", "acme/payments-api"),
        ("https://github.com/acme/payments-api.git", "acme/payments-api"),
        ("git+https://github.com/acme/payments-api@refs/heads/main", "acme/payments-api"),
        ("https://github.com/acme", None),
        ("acme/payments-api", None),
    ],
)
def test_repository_from_url(url: str, expected: str | None) -> None:
    assert repository_from_url(url) == expected
