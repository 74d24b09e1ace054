"""The merge of one key's own events: storage, builds, deployments, alerts, links, and the state mechanics."""

from __future__ import annotations

import itertools
import json

import pytest

from linked_artifacts.events import ArtifactEvent
from pipeline.derive import derived_from, effective_builds, linked_view
from pipeline.merge import apply_derived, merge
from pipeline.state import (
    Derived,
    LinkedArtifactState,
    MergeError,
    changed,
    empty_state,
    state_fingerprint,
)
from tests.unit.pipeline import factory as f


def state_of(key: str, *events: ArtifactEvent) -> LinkedArtifactState:
    return f.fold(empty_state(key), events)


def in_every_order(key: str, *events: ArtifactEvent) -> LinkedArtifactState:
    """The state after the events, asserting it is the same for every arrival order."""
    states = [state_of(key, *order) for order in itertools.permutations(events)]
    assert all(state == states[0] for state in states)
    return states[0]


# --- storage ---------------------------------------------------------------------------------------------


def test_move_retires_old_location_without_duplicating() -> None:
    push = f.storage("push", f.INDEX, 0, repository="docker-local", tags=["1.4.2"])
    move = f.storage(
        "move", f.INDEX, 2, repository="docker-prod", previous_repository="docker-local", action="moved"
    )
    state = in_every_order(f.INDEX, push, move, move)

    locations = {(loc.repository, loc.status) for loc in state.storage}
    assert locations == {("docker-local", "deleted"), ("docker-prod", "active")}
    old = next(loc for loc in state.storage if loc.repository == "docker-local")
    assert old.history[-1].action == "moved" and old.history[-1].stamp.at == f.at(2)
    assert [t.tag for t in old.tags] == ["1.4.2"]  # what was observed there stays observed


def test_copy_and_promotion_update_the_location_never_duplicate_it() -> None:
    push = f.storage("push", f.INDEX, 0, repository="docker-prod", size=1782)
    copy = f.storage(
        "copy", f.INDEX, 1, repository="docker-prod", previous_repository="docker-local", action="copied"
    )
    promote = f.storage("promote", f.INDEX, 2, repository="docker-prod", action="promoted", tags=["stable"])
    state = in_every_order(f.INDEX, push, copy, promote)

    assert len(state.storage) == 1  # a copy leaves its source alone and does not retire it
    (location,) = state.storage
    assert [c.action for c in location.history] == ["pushed", "copied", "promoted"]
    assert location.size == 1782  # filled by the one event that had it
    assert location.status == "active"


def test_registry_url_with_or_without_trailing_slash_is_one_location() -> None:
    a = f.storage("a", f.INDEX, 0)
    b = a.model_copy(
        update={
            "event_id": "b",
            "storage": a.storage.model_copy(update={"registry_url": f.REGISTRY_URL.rstrip("/")}),  # type: ignore[union-attr]
        }
    )
    assert len(state_of(f.INDEX, a, b).storage) == 1


def test_tags_are_observations_with_the_time_of_each() -> None:
    state = in_every_order(
        f.INDEX,
        f.storage("t0", f.INDEX, 0, tags=["latest", "1.4.2"]),
        f.storage("t3", f.INDEX, 3, tags=["latest"]),
    )
    (location,) = state.storage
    tags = {t.tag: t.observed_at for t in location.tags}
    assert tags == {"1.4.2": [f.at(0)], "latest": [f.at(0), f.at(3)]}
    view = linked_view(state)["storage"][0]["tags"]
    assert view[1] == {
        "tag": "latest",
        "first_seen": f.at(0).isoformat(),
        "last_seen": f.at(3).isoformat(),
        "observed_at": [f.at(0).isoformat(), f.at(3).isoformat()],
    }


def test_late_older_storage_event_never_overwrites_newer() -> None:
    deleted = f.storage("z-deleted", f.INDEX, 5, status="deleted", action="deleted", size=1790)
    late = f.storage("a-late", f.INDEX, 1, status="active", size=1782)
    state = state_of(f.INDEX, deleted, late)
    (location,) = state.storage
    assert location.status == "deleted"
    assert location.size == 1790  # the newer event's value, although the older one arrived last
    assert location.first_seen == f.at(1) and location.last_seen == f.at(5)


def test_same_second_tie_is_ranked_by_status_then_event_id() -> None:
    # Same time: deleted outranks active whatever the ids.
    active = f.storage("zzz", f.INDEX, 2, status="active")
    deleted = f.storage("aaa", f.INDEX, 2, status="deleted", action="deleted")
    assert in_every_order(f.INDEX, active, deleted).storage[0].status == "deleted"
    # Same time, same status: the larger event id wins the registers.
    low = f.alert("a-1", f.AMD64, 2, cvss=7.5)
    high = f.alert("b-1", f.AMD64, 2, cvss=9.8)
    assert in_every_order(f.AMD64, low, high).alerts[0].cvss_score == 9.8
    # Same time: fixed outranks open.
    opened = f.alert("z-open", f.AMD64, 2, state="open")
    fixed = f.alert("a-fixed", f.AMD64, 2, state="fixed")
    assert in_every_order(f.AMD64, opened, fixed).alerts[0].state == "fixed"


# --- builds ----------------------------------------------------------------------------------------------


def test_invocation_id_gives_the_provenance_its_run_identity() -> None:
    state = state_of(f.INDEX, f.provenance("p", f.INDEX, 0))
    (record,) = state.builds
    assert record.build_key == f"gh-run:{f.REPO}/{f.RUN_ID}/1"
    assert (record.repository, record.workflow_run_id, record.run_attempt) == (f.REPO, f.RUN_ID, 1)


def test_run_and_provenance_on_one_key_combine_into_one_build() -> None:
    run = f.build(
        "run",
        f.INDEX,
        3,
        source="github",
        repository=f.REPO,
        workflow_run_id=f.RUN_ID,
        run_attempt=1,
        status="completed",
        conclusion="success",
    )
    state = in_every_order(f.INDEX, f.provenance("prov", f.INDEX, 1), run)
    (record,) = state.builds
    assert record.conclusion == "success"
    assert record.predicate_type == "https://slsa.dev/provenance/v1"
    assert record.sources == ["attestation", "github"]


def test_conflicting_build_fields_take_the_later_event() -> None:
    early = f.workflow_run("w1", 1, status="in_progress", commit="a" * 40)
    late = f.workflow_run("w2", 4, status="completed", conclusion="failure", commit="b" * 40)
    (record,) = in_every_order(f.RUN_KEY, early, late).builds
    assert (record.status, record.conclusion, record.commit) == ("completed", "failure", "b" * 40)


def test_run_status_tie_in_one_second_goes_to_the_further_status() -> None:
    # GitHub's updated_at has one-second resolution: completed outranks in_progress at the same time.
    in_progress = f.workflow_run("zz", 2, status="in_progress")
    completed = f.workflow_run("aa", 2, status="completed", conclusion="success")
    (record,) = in_every_order(f.RUN_KEY, in_progress, completed).builds
    assert record.status == "completed"


def test_label_build_folds_into_the_provenance_build_of_the_same_commit() -> None:
    label = f.build("label", f.ARM64, 0, source="github", repository=f.REPO, commit=f.COMMIT, ref="v1.4.2")
    state = state_of(f.ARM64, label, f.provenance("prov", f.ARM64, 1))
    assert len(state.builds) == 2  # the state keeps both identities ...
    (build,) = effective_builds(state)  # ... the view shows one build
    assert build.build_key.startswith("gh-run:") and build.ref == "v1.4.2"


# --- deployments -----------------------------------------------------------------------------------------


def test_risks_keep_their_asserter_and_time_and_each_asserter_replaces_only_its_own() -> None:
    events = [
        f.deployment(
            "d1", f.INDEX, 1, risks=["internet-exposed", "sensitive-data"], asserted_by="defender-for-cloud"
        ),
        f.deployment("d2", f.INDEX, 2, risks=["internet-exposed"], asserted_by="k8s:aks-weu-1"),
        f.deployment("d3", f.INDEX, 3, risks=[], asserted_by="defender-for-cloud"),  # "no risks now"
        f.deployment("d0", f.INDEX, 0, risks=["lateral-movement"], asserted_by="defender-for-cloud"),  # late
        f.deployment("d4", f.INDEX, 4),  # no asserter: says nothing about risks
        f.deployment(
            "e1", f.INDEX, 1, slot="eus", risks=["critical-resource"], asserted_by="defender-for-cloud"
        ),
    ]
    view = linked_view(state_of(f.INDEX, *events))
    risks = {d["cluster"]: d["runtime_risks"] for d in view["deployments"]}
    assert risks["aks-weu-1"] == [
        {
            "risk": "internet-exposed",
            "asserted_by": [{"asserted_by": "k8s:aks-weu-1", "at": f.at(2).isoformat()}],
        }
    ]
    assert risks["aks-eus-1"] == [
        {
            "risk": "critical-resource",
            "asserted_by": [{"asserted_by": "defender-for-cloud", "at": f.at(1).isoformat()}],
        }
    ]
    assert view["effective"]["runtime_risks"] == ["critical-resource", "internet-exposed"]


def test_own_decommission_ends_the_deployment_and_a_later_deploy_restarts_it() -> None:
    on = f.deployment("on", f.INDEX, 1)
    off = f.deployment("off", f.INDEX, 3, status="decommissioned")
    (view,) = linked_view(in_every_order(f.INDEX, on, off))["deployments"]
    assert (view["active"], view["end_reason"], view["ended_at"]) == (
        False,
        "decommissioned",
        f.at(3).isoformat(),
    )
    again = f.deployment("again", f.INDEX, 5)
    (view,) = linked_view(in_every_order(f.INDEX, on, off, again))["deployments"]
    assert (
        view["active"]
        and view["first_seen"] == f.at(1).isoformat()
        and view["last_seen"] == f.at(5).isoformat()
    )


# --- state mechanics -------------------------------------------------------------------------------------


def test_redelivery_is_a_no_op_that_publishes_nothing() -> None:
    event = f.deployment("d", f.INDEX, 1, risks=["internet-exposed"], asserted_by="defender-for-cloud")
    once = merge(empty_state(f.INDEX), event)
    twice = merge(once, event.model_copy(update={"delivery_id": "another", "ingest_time": f.at(9999)}))
    assert twice == once
    assert not changed(once, twice)
    assert derived_from(once, twice) == []
    assert state_fingerprint(twice) == state_fingerprint(once)


def test_version_counts_distinct_events_and_inherited_versions() -> None:
    state = state_of(
        f.INDEX, f.storage("s1", f.INDEX, 0), f.storage("s1", f.INDEX, 0), f.alert("a", f.INDEX, 1)
    )
    assert state.version == 2
    message = Derived(target_key=f.INDEX, origin_key=f.REPO_KEY, origin_version=5, kind="repo-alerts")
    assert apply_derived(state, message).version == 7


def test_inherited_snapshot_is_replaced_only_by_a_higher_origin_version() -> None:
    old = Derived(
        target_key=f.INDEX,
        origin_key=f.REPO_KEY,
        origin_version=1,
        kind="repo-alerts",
        alerts=state_of(f.REPO_KEY, f.alert("a1", f.REPO_KEY, 0, alert_key="dependabot:1")).alerts,
    )
    new = old.model_copy(
        update={
            "origin_version": 2,
            "alerts": state_of(
                f.REPO_KEY,
                f.alert("a1", f.REPO_KEY, 0, alert_key="dependabot:1"),
                f.alert("a2", f.REPO_KEY, 1, alert_key="dependabot:1", state="fixed"),
            ).alerts,
        }
    )
    for order in ((old, new), (new, old), (new, new, old)):
        state = empty_state(f.INDEX)
        for message in order:
            state = apply_derived(state, message)
        assert state.inherited == [new]


def test_merge_refuses_an_event_keyed_for_another_state() -> None:
    with pytest.raises(MergeError) as refused:
        merge(empty_state(f.AMD64), f.alert("a", f.INDEX, 0))
    assert refused.value.field == "key" and refused.value.dead_letter
    message = Derived(target_key=f.INDEX, origin_key=f.REPO_KEY, origin_version=1, kind="repo-alerts")
    with pytest.raises(MergeError):
        apply_derived(empty_state(f.AMD64), message)


def test_event_without_its_body_is_refused() -> None:
    event = f.alert("a", f.INDEX, 0).model_copy(update={"alert": None})
    with pytest.raises(MergeError) as refused:
        merge(empty_state(f.INDEX), event)
    assert refused.value.field == "alert"


def test_link_reported_again_at_a_later_scan_with_the_same_id_changes_nothing() -> None:
    # Scanners re-send a link with the same event id at every scan: a link is a timeless fact.
    first = f.link("link", f.INDEX, minute=0)
    later = f.link("link", f.INDEX, minute=60)
    assert state_of(f.INDEX, first) == state_of(f.INDEX, first, later) == state_of(f.INDEX, later, first)


def test_naive_event_times_are_taken_as_utc() -> None:
    aware = f.alert("a", f.INDEX, 1)
    naive = aware.model_copy(update={"event_time": aware.event_time.replace(tzinfo=None)})
    assert state_of(f.INDEX, naive) == state_of(f.INDEX, aware)


def test_view_is_json_ready_and_names_the_state_version() -> None:
    state = state_of(f.INDEX, f.storage("s", f.INDEX, 0, tags=["latest"]), f.deployment("d", f.INDEX, 1))
    view = linked_view(state)
    assert json.loads(json.dumps(view)) == view
    assert view["version"] == state.version and view["fingerprint"] == state_fingerprint(state)
    assert view["effective"]["deployed"] is True and view["effective"]["environments"] == ["prod"]
