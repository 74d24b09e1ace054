"""The demo organisation: deterministic, sized to the target, well-formed, and told in requests that the real
parsers accept, making exactly the events (and the known answers) the model says."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from connectors.app import load_parsers
from connectors.base import Delivery, InputError
from connectors.jsonlimits import parse_json
from linked_artifacts.demo.org import (
    ORG,
    WINDOW,
    Org,
    build_org,
    expected_summary,
)
from linked_artifacts.demo.requests import Credentials, DemoRequest, build_plan
from linked_artifacts.events import ArtifactEvent, DeploymentBody
from linked_artifacts.settings import Settings

NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
DEFAULTS = Settings()


@cache
def org_of(target: int, seed: int = 1, now: datetime = NOW) -> Org:
    return build_org(seed=seed, now=now, target_events=target)


def all_digests(org: Org) -> set[str]:
    digests = {d for b in org.builds for d in b.digests}
    digests |= {c.digest for c in org.deployments}
    digests |= {s.subject for s in org.scans}
    return digests


# --- the model ------------------------------------------------------------------------------------------


def test_same_seed_and_now_give_the_same_org() -> None:
    first = build_org(seed=5, now=NOW, target_events=3_000)
    second = build_org(seed=5, now=NOW, target_events=3_000)
    assert first == second
    assert expected_summary(first) == expected_summary(second)


def test_another_seed_gives_another_org() -> None:
    assert all_digests(org_of(3_000, seed=1)).isdisjoint(all_digests(org_of(3_000, seed=2)))


def test_digests_depend_on_the_seed_not_on_now() -> None:
    later = NOW + timedelta(days=3, hours=5)
    assert all_digests(org_of(3_000)) == all_digests(org_of(3_000, now=later))


def test_a_larger_target_keeps_the_smaller_orgs_repositories() -> None:
    small, large = org_of(2_000), org_of(10_000)
    assert large.repositories[: len(small.repositories)] == small.repositories


@pytest.mark.parametrize("target", [2_000, 10_000, 40_000])
def test_events_reach_the_target_and_overshoot_by_less_than_a_repository(target: int) -> None:
    org = org_of(target)
    assert target <= org.expected_events <= target * 1.1
    assert org.expected_events == sum(org.counts.values())


def test_size_scales_roughly_linearly_with_the_target() -> None:
    small, large = org_of(5_000), org_of(40_000)
    ratio = len(large.repositories) / len(small.repositories)
    assert 6 <= ratio <= 10
    assert 6 <= len(large.builds) / len(small.builds) <= 10


def test_every_digest_is_normalised() -> None:
    for digest in all_digests(org_of(10_000)):
        assert DIGEST.fullmatch(digest), digest


def test_multi_arch_images_have_an_index_and_both_platforms() -> None:
    images = org_of(10_000).images
    multi = [i for i in images if i.index]
    single = [i for i in images if not i.index]
    assert multi and single
    for image in multi:
        assert [m.platform for m in image.manifests] == ["linux/amd64", "linux/arm64"]
        assert image.subject == image.index
        assert image.index not in {m.digest for m in image.manifests}
    for image in single:
        assert [m.platform for m in image.manifests] == ["linux/amd64"]
        assert image.subject == image.manifests[0].digest
    every = [d for i in images for d in i.digests]
    assert len(every) == len(set(every))


def test_every_event_time_lies_in_the_30_days_before_now() -> None:
    org = org_of(10_000)
    start = NOW - WINDOW
    times = [b.started_at for b in org.builds] + [b.completed_at for b in org.builds]
    times += [t for b in org.builds for t in (b.pushed_at, b.attested_at) if t is not None]
    times += [c.at for c in org.deployments] + [s.at for s in org.scans]
    times += [a.created_at for a in org.repo_alerts] + [a.closed_at for a in org.repo_alerts if a.closed_at]
    assert all(start <= t <= NOW for t in times)


def test_the_default_org_tells_every_story() -> None:
    org = org_of(10_000)
    kinds = {r.kind for r in org.repositories}
    assert kinds == {"service", "worker", "library"}
    assert {p.ecosystem for p in org.packages} == {"npm", "maven"}
    assert any(b.conclusion == "failure" for b in org.builds)
    assert any(c.rollback for c in org.deployments)
    assert {c.slot.cluster.channel for c in org.deployments if c.status == "decommissioned"} == {
        "cloudevents",
        "kubernetes",
    }
    assert {a.state for a in org.repo_alerts} == {"open", "fixed", "dismissed"}
    assert {r.mode for r in org.records} == {"cluster", "single"}
    assert {c.slot.cluster.name for c in org.deployments} == {
        "aks-dev-weu-1", "gke-dev-use-1", "eks-staging-usw2-1", "aks-staging-weu-1",
        "aks-prod-weu-1", "aks-prod-neu-1", "gke-prod-use-1", "eks-prod-apse1-1",
    }  # fmt: skip


def test_prod_services_are_more_often_internet_exposed_than_dev() -> None:
    org = org_of(10_000)
    share: dict[str, list[bool]] = defaultdict(list)
    for change in org.deployments:
        if change.status == "deployed" and change.build.repository.kind == "service":
            share[change.slot.environment].append("internet-exposed" in change.risks)
    prod = sum(share["prod"]) / len(share["prod"])
    dev = sum(share["dev"]) / len(share["dev"])
    assert prod > 0.3 > dev


def test_the_flagship_is_internet_exposed_in_prod_with_an_exploitable_critical() -> None:
    org = org_of(2_000)
    summary = expected_summary(org)
    flagship = org.repositories[0]
    assert flagship.flagship and flagship.name == "payments-api"
    exposed = set(summary["internet_exposed_prod_digests"])
    assert any(b.subject in exposed for b in org.builds if b.repository is flagship)
    assert "CVE-2026-10051" in summary["critical_cves_internet_exposed_prod"]


def test_summary_counts_are_consistent() -> None:
    summary = expected_summary(org_of(10_000))
    assert summary["active_slots"] + summary["decommissioned_slots"] == summary["slots"]
    assert sum(summary["active_slots_by_environment"].values()) == summary["active_slots"]
    assert summary["image_digests"] == (
        summary["index_digests"] + summary["platform_digests"] + summary["single_platform_digests"]
    )
    assert summary["platform_digests"] == summary["links"] == 2 * summary["index_digests"]
    assert set(summary["internet_exposed_prod_digests"]) <= set(summary["deployed_digests"])
    assert summary["decommissioned_slots"] > 0 and summary["superseded_deployments"] > 0
    assert 0 < summary["open_critical_alerts_internet_exposed_prod"] <= summary["open_alerts_deployed"]


# --- the requests through the real parsers ----------------------------------------------------------------


def delivery_of(request: DemoRequest, received_at: datetime) -> Delivery:
    return Delivery(
        endpoint=request.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=request.body,
        received_at=received_at,
        query=dict(request.query),
        path_params=dict(request.path_params),
    )


class Parsed:
    """Every request of an org run through its endpoint's real parser."""

    def __init__(self, org: Org) -> None:
        parsers = load_parsers()
        self.org = org
        self.received_at = org.now + timedelta(minutes=1)
        self.requests: list[DemoRequest] = []
        self.events: list[ArtifactEvent] = []
        self.per_request: list[int] = []
        self.errors: list[str] = []
        for request in build_plan(org, Credentials.placeholder()):
            self.requests.append(request)
            try:
                payload = parse_json(request.body, max_depth=DEFAULTS.max_json_depth, max_items=DEFAULTS.max_json_items)
                result = parsers[request.endpoint](delivery_of(request, self.received_at), payload)
            except InputError as exc:
                self.errors.append(f"{request.label}: {exc.message}")
                self.per_request.append(-1)
                continue
            self.events.extend(result.events)
            self.per_request.append(len(result.events))


@cache
def parsed(target: int) -> Parsed:
    return Parsed(org_of(target))


def test_every_request_parses_with_the_real_parser_of_its_endpoint() -> None:
    run = parsed(10_000)
    assert run.errors == []
    assert {r.endpoint for r in run.requests} == {
        "github", "artifactory", "storage-record", "deployment-record", "cluster-deployment-records",
        "attestations", "cloudevents", "kubernetes", "scans",
    }  # fmt: skip


def test_each_request_makes_the_events_it_announces() -> None:
    run = parsed(10_000)
    wrong = [
        (r.label, r.expected_events, n)
        for r, n in zip(run.requests, run.per_request, strict=True)
        if n != r.expected_events
    ]
    assert wrong == []


def test_the_events_add_up_to_the_model_and_near_the_target() -> None:
    run = parsed(10_000)
    assert len(run.events) == run.org.expected_events
    assert 10_000 <= len(run.events) <= 11_000


def test_only_timeless_links_repeat_an_event_id() -> None:
    # Grype sends the same link (same id) at every rescan of a platform: the pipeline keeps it once.
    # Every other event is a distinct fact.
    run = parsed(10_000)
    seen: dict[str, ArtifactEvent] = {}
    for event in run.events:
        earlier = seen.setdefault(event.event_id, event)
        if earlier is not event:
            assert event.kind == "link" and event.link == earlier.link, event


def test_every_event_digest_is_normalised() -> None:
    for event in parsed(10_000).events:
        assert event.digest is None or DIGEST.fullmatch(event.digest)


# --- the known answers, recomputed from the canonical events alone ---------------------------------------
# These follow the pipeline's rules (pipeline.derive.slot_verdicts, history alert families) over what the
# parsers produced, so a model whose summary disagrees with what it sends fails here.


def slots_from_events(events: list[ArtifactEvent]) -> dict[tuple[str, ...], dict[str, Any]]:
    status_rank = {"deployed": 0, "decommissioned": 1}
    by_slot: dict[tuple[str, ...], list[tuple[ArtifactEvent, DeploymentBody]]] = defaultdict(list)
    for event in events:
        if (d := event.deployment) is not None:
            by_slot[(d.logical_environment, d.physical_environment, d.cluster, d.deployment_name)].append((event, d))
    slots = {}
    for key, pairs in by_slot.items():
        ordered = sorted(pairs, key=lambda p: (p[0].event_time, status_rank[p[1].status], p[0].event_id))
        deployed = [(e, d) for e, d in ordered if d.status == "deployed"]
        holder = deployed[-1][0].digest
        # Risks: each asserter's latest assertion for the holder digest, united.
        latest_by_asserter = {d.risks_asserted_by or e.source: d for e, d in deployed if e.digest == holder}
        slots[key] = {
            "holder": holder,
            "active": ordered[-1][1].status == "deployed",
            "risks": {r for d in latest_by_asserter.values() for r in d.runtime_risks},
        }
    return slots


def test_slot_answers_match_the_events() -> None:
    run = parsed(10_000)
    summary = expected_summary(run.org)
    slots = slots_from_events(run.events)
    active = {k: v for k, v in slots.items() if v["active"]}
    assert len(slots) == summary["slots"]
    assert len(active) == summary["active_slots"]
    assert sum(1 for k in active if k[0] == "prod") == summary["active_prod_slots"]
    assert sorted({v["holder"] for v in active.values()}) == summary["deployed_digests"]
    exposed = sorted({v["holder"] for k, v in active.items() if k[0] == "prod" and "internet-exposed" in v["risks"]})
    assert exposed == summary["internet_exposed_prod_digests"]


def test_digest_link_and_alert_answers_match_the_events() -> None:
    run = parsed(10_000)
    summary = expected_summary(run.org)
    # Artifactory reports a multi-arch push once, for the index: its platforms are known through the links.
    named = {e.digest for e in run.events if e.digest and e.kind in ("storage", "build", "link")}
    assert len(named) == summary["digests"]
    stored = {e.digest for e in run.events if e.storage is not None and e.storage.action != "observed"}
    assert stored < named
    links = {(e.link.index_digest, e.link.platform_digest) for e in run.events if e.link is not None}
    assert len(links) == summary["links"]
    alert_keys: dict[str, set[str]] = defaultdict(set)
    for e in run.events:
        if e.alert is not None:
            alert_keys[e.source].add(e.alert.alert_key)
    assert {k: len(v) for k, v in sorted(alert_keys.items())} == summary["alerts"]


def test_repository_alerts_name_repositories_the_builds_name() -> None:
    run = parsed(10_000)
    built = {e.build.repository.lower() for e in run.events if e.build is not None and e.build.repository}
    alerted = {e.alert.repository.lower() for e in run.events if e.alert is not None and e.alert.repository}
    assert alerted and alerted <= built
    assert all(r.startswith(f"{ORG}/") for r in built)
