"""Facts that cross keys: index <-> platforms, repository alerts, slot holders, workflow runs."""

from __future__ import annotations

import itertools
import random
from typing import Any

from linked_artifacts.events import ArtifactEvent
from pipeline import derive
from pipeline.derive import derived_from, linked_view, outgoing
from pipeline.merge import merge
from pipeline.state import Derived, LinkedArtifactState, empty_state
from tests.unit.pipeline import factory as f


def system_in_every_order(*events: ArtifactEvent) -> dict[str, LinkedArtifactState]:
    """Final states of every key, asserting they are the same for every arrival order of the events
    (and for shuffled interleavings of the derived messages, with redeliveries)."""
    results = [f.run_system(order) for order in itertools.permutations(events)]
    results += [f.run_system(events, random.Random(seed)) for seed in range(5)]
    for result in results[1:]:
        assert result == results[0]
    return results[0]


def effective(states: dict[str, LinkedArtifactState], key: str) -> dict[str, Any]:
    view: dict[str, Any] = linked_view(states.get(key) or empty_state(key))["effective"]
    return view


# --- index <-> platforms ---------------------------------------------------------------------------------


def test_deployment_reaches_platform_digests_whichever_arrives_first() -> None:
    states = system_in_every_order(
        f.deployment("dep", f.INDEX, 1, risks=["internet-exposed"], asserted_by="defender-for-cloud"),
        f.link("link-amd", f.INDEX, platform_digest=f.AMD64),  # reported on the index's key
        f.link("link-arm", f.ARM64, platform_digest=f.ARM64),  # reported on the platform's key
    )
    for platform in (f.AMD64, f.ARM64):
        (deployment,) = effective(states, platform)["deployments"]
        assert deployment["inherited_from"] == f.INDEX and deployment["active"]
        assert effective(states, platform)["runtime_risks"] == ["internet-exposed"]
        assert linked_view(states[platform])["deployments"] == []  # not an own fact of the platform
    linked = linked_view(states[f.INDEX])["linked_digests"]
    assert [(d["digest"], d["role"], d["platform"]) for d in linked] == [
        (f.AMD64, "platform", "linux/amd64"),
        (f.ARM64, "platform", "linux/arm64"),
    ]


def test_scan_on_platform_reaches_index() -> None:
    states = system_in_every_order(
        f.alert("scan", f.AMD64, 2, alert_key="trivy:CVE-2026-0001", cvss=9.8, epss=0.42),
        f.link("link", f.AMD64, platform_digest=f.AMD64),
    )
    (alert,) = effective(states, f.INDEX)["alerts"]
    assert (alert["via"], alert["via_kind"], alert["cvss_score"]) == (f.AMD64, "platform", 9.8)
    assert linked_view(states[f.INDEX])["alerts"] == []


def test_linked_context_carries_only_own_facts_so_nothing_loops_back() -> None:
    states = system_in_every_order(
        f.link("link-amd", f.INDEX, platform_digest=f.AMD64),
        f.link("link-arm", f.INDEX, platform_digest=f.ARM64),
        f.alert("amd-scan", f.AMD64, 1, alert_key="trivy:amd"),
        f.deployment("amd-dep", f.AMD64, 1, slot="eus"),  # a platform's own deployment stays its own
        f.deployment("index-dep", f.INDEX, 1),
    )
    index = effective(states, f.INDEX)
    assert [a["alert_key"] for a in index["alerts"]] == ["trivy:amd"]
    assert [d["inherited_from"] for d in index["deployments"]] == [None]  # not the platform's deployment
    arm = effective(states, f.ARM64)
    assert arm["alerts"] == []  # a sibling's alert is the index's inherited fact, not sent on
    assert [d["inherited_from"] for d in arm["deployments"]] == [f.INDEX]


def test_deployment_for_an_unknown_digest_is_kept_and_linked_when_the_rest_arrives() -> None:
    router = f.Router()
    for message in router.deliver(f.deployment("dep", f.INDEX, 1)):
        router.deliver(message)  # to the slot and back
    assert linked_view(router.state(f.INDEX))["effective"]["deployed"]
    pending = router.deliver(f.link("link", f.INDEX, platform_digest=f.AMD64, minute=7))
    while pending:
        pending += router.deliver(pending.pop())
    (deployment,) = effective(router.states, f.AMD64)["deployments"]
    assert deployment["inherited_from"] == f.INDEX


# --- deployment slots ------------------------------------------------------------------------------------


def test_slot_takeover_supersedes_the_previous_digest_in_that_cluster_only() -> None:
    states = system_in_every_order(
        f.deployment("index-weu", f.INDEX, 1),
        f.deployment("index-eus", f.INDEX, 1, slot="eus"),
        f.deployment("other-weu", f.OTHER, 3),
        f.link("link", f.INDEX, platform_digest=f.AMD64),
    )
    by_cluster = {d["cluster"]: d for d in effective(states, f.INDEX)["deployments"]}
    weu = by_cluster["aks-weu-1"]
    assert (weu["active"], weu["status"], weu["end_reason"]) == (False, "decommissioned", "superseded")
    assert (weu["ended_at"], weu["superseded_by"]) == (f.at(3).isoformat(), f.OTHER)
    assert by_cluster["aks-eus-1"]["active"]
    (other,) = effective(states, f.OTHER)["deployments"]
    assert other["active"]
    # The platform inherits the index's deployments with the slot's verdict applied.
    inherited = {d["cluster"]: d["active"] for d in effective(states, f.AMD64)["deployments"]}
    assert inherited == {"aks-weu-1": False, "aks-eus-1": True}
    assert linked_view(states[f.SLOT_KEYS["weu"]])["slot"] == {
        "holder_digest": f.OTHER,
        "holder_since": f.at(3).isoformat(),
        "active": True,
    }


def test_slot_keyed_decommission_decommissions_whichever_digest_held_the_slot() -> None:
    states = system_in_every_order(
        f.deployment("index-weu", f.INDEX, 1),
        f.deployment("other-weu", f.OTHER, 3),
        f.slot_decommission("workload-deleted", 5),
    )
    (other,) = effective(states, f.OTHER)["deployments"]
    assert (other["active"], other["end_reason"], other["ended_at"]) == (
        False,
        "slot-decommissioned",
        f.at(5).isoformat(),
    )
    (index,) = effective(states, f.INDEX)["deployments"]
    assert (index["end_reason"], index["ended_at"]) == ("superseded", f.at(3).isoformat())  # it ended first
    assert linked_view(states[f.SLOT_KEYS["weu"]])["slot"]["active"] is False


def test_redeploy_after_a_takeover_takes_the_slot_back() -> None:
    states = system_in_every_order(
        f.deployment("index-1", f.INDEX, 1),
        f.deployment("other-3", f.OTHER, 3),
        f.deployment("index-6", f.INDEX, 6),
    )
    (index,) = effective(states, f.INDEX)["deployments"]
    assert index["active"]
    (other,) = effective(states, f.OTHER)["deployments"]
    assert (other["end_reason"], other["ended_at"], other["superseded_by"]) == (
        "superseded",
        f.at(6).isoformat(),
        f.INDEX,
    )


def test_same_second_takeover_is_decided_by_event_id() -> None:
    states = system_in_every_order(f.deployment("a", f.INDEX, 2), f.deployment("b", f.OTHER, 2))
    assert effective(states, f.OTHER)["deployed"] and not effective(states, f.INDEX)["deployed"]


# --- repositories and runs -------------------------------------------------------------------------------


def test_repo_alerts_reach_digests_built_from_the_repository_whichever_arrives_first() -> None:
    states = system_in_every_order(
        f.alert("opened", f.REPO_KEY, 1, alert_key="dependabot:1", source="dependabot"),
        f.alert("fixed", f.REPO_KEY, 4, alert_key="dependabot:1", state="fixed", source="dependabot"),
        f.provenance("prov", f.INDEX, 0),
    )
    (alert,) = effective(states, f.INDEX)["alerts"]
    assert (alert["via"], alert["via_kind"], alert["state"]) == (f.REPO_KEY, "repository", "fixed")
    assert effective(states, f.AMD64)["alerts"] == []  # not built from it (no build names the repository)
    assert linked_view(states[f.REPO_KEY])["members"] == [f.INDEX]


def test_workflow_run_and_provenance_for_the_same_run_combine_into_one_build() -> None:
    states = system_in_every_order(
        f.provenance("prov", f.INDEX, 0),
        f.workflow_run("run-started", 1, status="in_progress"),
        f.workflow_run("run-done", 4, status="completed", conclusion="success"),
    )
    (build,) = linked_view(states[f.INDEX])["builds"]
    assert build["workflow_run"]["status"] == "completed"
    assert build["workflow_run"]["conclusion"] == "success"
    assert build["workflow_run"]["name"] == "release"
    assert build["provenance"]["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert build["sources"] == ["attestation", "github"]
    assert linked_view(states[f.RUN_KEY])["members"] == [f.INDEX]


def test_run_of_another_attempt_does_not_merge_into_the_build() -> None:
    states = system_in_every_order(
        f.provenance("prov", f.INDEX, 0),
        f.workflow_run("attempt-2", 4, status="completed", conclusion="failure", run_attempt=2),
    )
    (build,) = linked_view(states[f.INDEX])["builds"]
    assert build["workflow_run"]["conclusion"] is None


# --- the protocol itself ---------------------------------------------------------------------------------


def test_messages_are_sent_only_when_a_target_is_new_or_its_payload_moved() -> None:
    state = merge(empty_state(f.INDEX), f.link("link", f.INDEX, platform_digest=f.AMD64))
    (first,) = derived_from(empty_state(f.INDEX), state)
    assert (first.kind, first.target_key, first.origin_version) == ("linked-context", f.AMD64, 1)
    after = merge(state, f.deployment("dep", f.INDEX, 1))
    sent = {(m.kind, m.target_key): m for m in derived_from(state, after)}
    assert set(sent) == {("linked-context", f.AMD64), ("slot-member", f.SLOT_KEYS["weu"])}
    assert len(sent["linked-context", f.AMD64].deployments) == 1
    assert derived_from(after, after) == []
    assert {(m.kind, m.target_key) for m in outgoing(after)} == set(sent)


def test_a_slot_sends_a_member_its_verdict_only_when_the_verdict_moves() -> None:
    # Releases succeed each other in one slot, each re-observed by the runtime. Every change in the slot
    # used to re-send a verdict to every past member (quadratic in the releases); now a member hears once,
    # when it is superseded, and nothing about the releases after that.
    releases = [f"sha256:{n:064x}" for n in range(1, 9)]
    events = [
        f.deployment(f"r{n}-{seen}", digest, n * 10 + seen)
        for n, digest in enumerate(releases)
        for seen in range(3)
    ]
    router = f.Router()
    pending: list[ArtifactEvent | Derived] = list(events)
    verdicts: dict[str, list[Derived]] = {}
    while pending:
        for message in router.deliver(pending.pop(0)):
            if message.kind == "slot-holder":
                verdicts.setdefault(message.target_key, []).append(message)
            pending.append(message)
    # One verdict per superseded release; none for the holder (its own history says it is deployed).
    assert {digest: len(sent) for digest, sent in verdicts.items()} == {d: 1 for d in releases[:-1]}
    first = verdicts[releases[0]][-1].slot_end
    assert first is not None and (first.ended_by, first.end_reason) == (releases[1], "superseded")
    assert (first.holder_digest, first.slot_active) == (None, False)  # the holder is the slot's own view
    assert f.run_system(events, random.Random(3)) == router.states


def test_derived_messages_round_trip_through_json() -> None:
    states = f.run_system([f.deployment("dep", f.INDEX, 1), f.link("link", f.INDEX, platform_digest=f.AMD64)])
    for message in outgoing(states[f.INDEX]):
        assert Derived.model_validate_json(message.model_dump_json()) == message


def test_a_replaced_state_s_plan_leaves_the_cache_and_a_kept_one_is_reused() -> None:
    state = merge(empty_state(f.INDEX), f.link("link", f.INDEX, platform_digest=f.AMD64))
    after = merge(state, f.deployment("dep", f.INDEX, 1))
    derived_from(state, after)
    assert id(after) in derive.plan_of.entries and id(state) not in derive.plan_of.entries  # planned once, as `after`
    later = merge(after, f.deployment("dep2", f.INDEX, 2))
    sent = derived_from(after, later)  # `after` is replaced now: its plan is taken, not recomputed
    assert id(after) not in derive.plan_of.entries and sent
    # The same messages as planning from scratch: an equal state that is another object is not cached.
    assert derived_from(after.model_copy(), later) == sent
    copy = after.model_copy()
    assert derive.plan_of(copy) == derive._plan(after) and derive.plan_of.entries[id(copy)][0] is copy
