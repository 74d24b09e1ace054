"""The demo's requests pass the connectors' own checks: signature or token, route, content type, limits; and
they are deterministic, ordered by event time, and carry unique delivery ids."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from connectors import auth
from connectors.endpoints import BY_NAME, accepts
from connectors.jsonlimits import parse_json
from linked_artifacts.demo.org import build_org
from linked_artifacts.demo.requests import ENDPOINT_PATHS, Credentials, DemoError, DemoRequest, build_plan
from linked_artifacts.settings import ArtifactoryAuthMode, Settings

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
TOKENS: dict[str, Any] = {
    "github_webhook_secret": "gh-secret",
    "artifactory_secret": "jfrog-secret",
    "metadata_write_token": "meta-write",
    "attestations_token": "attest",
    "cloudevents_token": "ce",
    "kubernetes_token": "k8s",
    "scans_token": "scans",
}


def settings(mode: ArtifactoryAuthMode = "hmac-sha256") -> Settings:
    return Settings(data_dir=Path("/nonexistent"), artifactory_auth_mode=mode, **TOKENS)


@cache
def requests_of(mode: ArtifactoryAuthMode = "hmac-sha256", seed: int = 1, now: datetime = NOW) -> list[DemoRequest]:
    org = build_org(seed=seed, now=now, target_events=4_000)
    return list(build_plan(org, Credentials.from_settings(settings(mode))))


def header(request: DemoRequest, name: str) -> str | None:
    return {k.lower(): v for k, v in request.headers.items()}.get(name.lower())


@pytest.mark.parametrize("mode", ["hmac-sha256", "plain"])
def test_every_signature_and_token_verifies_with_the_connectors_checks(mode: ArtifactoryAuthMode) -> None:
    config = settings(mode)
    for request in requests_of(mode):
        spec = BY_NAME[request.endpoint]
        if spec.auth == "github":
            auth.verify_github(TOKENS["github_webhook_secret"], request.body, header(request, "X-Hub-Signature-256"))
        elif spec.auth == "artifactory":
            matched = auth.verify_jfrog(
                TOKENS["artifactory_secret"], request.body, header(request, "X-JFrog-Event-Auth"), mode=mode
            )
            assert matched == mode
        else:
            auth.verify_bearer(header(request, "Authorization"), auth.scope_tokens(config, spec.scope or ""))


def test_a_changed_body_no_longer_verifies() -> None:
    signed = next(r for r in requests_of() if r.endpoint == "github")
    with pytest.raises(auth.AuthFailure):
        auth.verify_github(TOKENS["github_webhook_secret"], signed.body + b" ", header(signed, "X-Hub-Signature-256"))


def test_paths_and_content_types_are_what_each_endpoint_serves() -> None:
    assert set(ENDPOINT_PATHS) == set(BY_NAME)
    for name, path in ENDPOINT_PATHS.items():
        assert BY_NAME[name].path == path
    for request in requests_of():
        spec = BY_NAME[request.endpoint]
        assert spec.pattern.match(request.path), request.path
        assert accepts(spec, header(request, "Content-Type")), (request.endpoint, header(request, "Content-Type"))


def test_bodies_stay_within_the_connectors_limits() -> None:
    defaults = Settings(data_dir=Path("/nonexistent"))
    for request in requests_of():
        assert len(request.body) <= defaults.max_body_bytes
        parse_json(request.body, max_depth=defaults.max_json_depth, max_items=defaults.max_json_items)


def test_requests_are_in_event_time_order_and_cover_the_window() -> None:
    times = [r.at for r in requests_of()]
    assert times == sorted(times)
    assert NOW - timedelta(days=30) <= times[0] < NOW - timedelta(days=25)
    assert times[-1] == NOW  # the metadata API's current records come last


def test_the_same_seed_and_now_give_the_same_bytes() -> None:
    org = build_org(seed=1, now=NOW, target_events=4_000)
    again = list(build_plan(org, Credentials.from_settings(settings())))
    assert again == requests_of()


def test_another_now_gives_other_delivery_ids() -> None:
    later = requests_of(now=NOW + timedelta(hours=1))
    ids = {header(r, "X-GitHub-Delivery") for r in requests_of() if r.endpoint == "github"}
    assert ids.isdisjoint({header(r, "X-GitHub-Delivery") for r in later if r.endpoint == "github"})


def test_delivery_and_event_ids_are_unique() -> None:
    requests = requests_of()
    github = Counter(header(r, "X-GitHub-Delivery") for r in requests if r.endpoint == "github")
    assert github.most_common(1)[0][1] == 1
    jfrog = Counter(json.loads(r.body)["id"] for r in requests if r.endpoint == "artifactory")
    assert jfrog.most_common(1)[0][1] == 1
    cloudevents = Counter(
        (event["source"], event["id"]) for r in requests if r.endpoint == "cloudevents" for event in json.loads(r.body)
    )
    assert cloudevents.most_common(1)[0][1] == 1


def test_jfrog_event_ids_are_ulids_of_the_push_time() -> None:
    from connectors.sources.artifactory import _ulid_time

    for request in requests_of():
        if request.endpoint == "artifactory":
            ulid = json.loads(request.body)["id"]
            assert _ulid_time(ulid, NOW) == request.at


def test_kubernetes_requests_name_their_cluster_environment_and_region() -> None:
    for request in requests_of():
        if request.endpoint == "kubernetes":
            assert set(request.query) == {"cluster", "environment", "region"}
            assert request.query["environment"] in ("dev", "staging", "prod")


def test_missing_credentials_name_the_fix() -> None:
    incomplete = Settings(data_dir=Path("/nonexistent"), github_webhook_secret="x")
    with pytest.raises(DemoError) as caught:
        Credentials.from_settings(incomplete)
    assert "artifactory_secret" in caught.value.message
    assert "linked-artifacts up" in caught.value.message
