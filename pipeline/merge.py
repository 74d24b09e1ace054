"""The order-free merge: events and derived messages joined into a key's linked-artifact state.

``merge(state, event)`` turns the event into a one-event state (its *delta*) and joins it in;
``apply_derived(state, derived)`` does the same with a message from another key. ``join`` is the
join of the semilattice described in ``pipeline.state``: per record identity it takes the union of sets,
the min/max of times and, for each register, the value whose stamp ranks highest. So it is commutative,
associative and idempotent, and the result depends only on which contributions were seen.

Pure functions over frozen values: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import datetime
from itertools import takewhile
from typing import Any, TypeVar

from linked_artifacts.events import (
    AlertBody,
    ArtifactEvent,
    BuildBody,
    DeploymentBody,
    LinkBody,
    StorageBody,
    slot_key,
)
from pipeline.state import (
    ALERT_RANK,
    BUILD_RANK,
    DEPLOYMENT_RANK,
    STORAGE_RANK,
    AlertRecord,
    BuildRecord,
    DeploymentRecord,
    Derived,
    LinkedArtifactState,
    LinkRecord,
    LocationChange,
    MergeError,
    Record,
    RiskAssertion,
    SlotEnd,
    Stamp,
    StatusChange,
    StorageLocation,
    TagObservation,
    canonical_json,
    group_stamps,
    newer_verdict,
    one_group,
    trusted,
    utc,
)

T = TypeVar("T")

# GitHub's SLSA invocationId: https://github.com/<owner>/<repo>/actions/runs/<id>/attempts/<n>.
_GITHUB_INVOCATION = re.compile(r"^https://[^/]+/([^/]+/[^/]+)/actions/runs/(\d+)(?:/attempts/(\d+))?/?$")


# --- public API ------------------------------------------------------------------------------------------


def merge(state: LinkedArtifactState, event: ArtifactEvent) -> LinkedArtifactState:
    """The state after ``event``. Redelivering an event returns an equal state."""
    if event.key != state.key:
        raise MergeError(
            f"key: event {event.event_id} is keyed {event.key!r}, not {state.key!r}", field="key"
        )
    return join(state, event_delta(event))


def apply_derived(state: LinkedArtifactState, derived: Derived) -> LinkedArtifactState:
    """The state after a message from another key; an older or repeated snapshot changes nothing."""
    if derived.target_key != state.key:
        raise MergeError(
            f"target_key: message from {derived.origin_key} targets {derived.target_key!r},"
            f" not {state.key!r}",
            field="target_key",
        )
    return join(
        state, LinkedArtifactState(key=state.key, inherited=[derived], version=derived.origin_version)
    )


def join(a: LinkedArtifactState, b: LinkedArtifactState) -> LinkedArtifactState:
    """The least state that contains both: the semilattice join."""
    if a.key != b.key:
        raise MergeError(f"key: cannot join states of {a.key!r} and {b.key!r}", field="key")
    event_ids = _union_sorted(a.event_ids, b.event_ids)
    deployments = _join_keyed(a.deployments, b.deployments, key=lambda r: r.slot, join=_join_deployment)
    inherited = _join_keyed(a.inherited, b.inherited, key=_snapshot_key, join=_join_snapshot)
    if b.inherited or b.deployments:
        inherited = [d for d in inherited if d.kind != "slot-holder" or _current(d.slot_end, deployments)]
    # Every part is already a valid model: construct without validating the whole state again.
    return trusted(
        LinkedArtifactState,
        key=a.key,
        version=len(event_ids) + sum(d.origin_version for d in inherited),
        event_ids=event_ids,
        storage=_join_keyed(a.storage, b.storage, key=location_identity, join=_join_location),
        builds=_join_keyed(a.builds, b.builds, key=lambda r: r.build_key, join=_join_build),
        deployments=deployments,
        alerts=_join_keyed(a.alerts, b.alerts, key=lambda r: r.alert_key, join=_join_alert),
        links=_join_keyed(a.links, b.links, key=link_identity, join=_join_link),
        inherited=inherited,
    )


def join_all(state: LinkedArtifactState, deltas: list[LinkedArtifactState]) -> LinkedArtifactState:
    """``join(join(join(state, d1), d2), ...)`` in one join: the deltas' records are pooled and joined into
    ``state`` together (``_join_keyed`` joins equal identities among them too), instead of building a
    state per delta. A batch folds ~12 findings of one report, or every slot-member message of a slot, at
    once."""
    if len(deltas) == 1:
        return join(state, deltas[0])
    for delta in deltas:
        if delta.key != state.key:
            raise MergeError(f"key: cannot join states of {state.key!r} and {delta.key!r}", field="key")
    # Not a canonical state (lists unsorted, identities repeated): only join's second argument.
    pooled = trusted(
        LinkedArtifactState,
        key=state.key,
        version=0,
        event_ids=[event_id for delta in deltas for event_id in delta.event_ids],
        storage=[record for delta in deltas for record in delta.storage],
        builds=[record for delta in deltas for record in delta.builds],
        deployments=[record for delta in deltas for record in delta.deployments],
        alerts=[record for delta in deltas for record in delta.alerts],
        links=[record for delta in deltas for record in delta.links],
        inherited=[record for delta in deltas for record in delta.inherited],
    )
    return join(state, pooled)


def location_identity(location: StorageLocation) -> tuple[str, str, str]:
    return (location.registry_url, location.repository, location.path)


def link_identity(link: LinkRecord) -> tuple[str, str]:
    return (link.index_digest, link.platform_digest)


def join_builds(a: BuildRecord, b: BuildRecord) -> BuildRecord:
    """Field-wise join of two records of one build (also used by the view to combine run and provenance)."""
    return _join_build(a, b)


def join_links(a: LinkRecord, b: LinkRecord) -> LinkRecord:
    return _join_link(a, b)


def build_key(body: BuildBody, *, event_id: str) -> str:
    """Identity of a build; see ``BuildRecord``. ``body`` has already had its invocation id parsed."""
    if body.repository and body.workflow_run_id is not None:
        return f"gh-run:{body.repository.lower()}/{body.workflow_run_id}/{body.run_attempt or 1}"
    if body.invocation_id:
        return f"invocation:{body.invocation_id}"
    if body.repository and body.commit:
        return f"commit:{body.repository.lower()}@{body.commit.lower()}"
    return f"event:{event_id}"


# --- one event as a state ----------------------------------------------------------------------------------


def event_delta(event: ArtifactEvent) -> LinkedArtifactState:
    """The state that holds just this event: merging is joining it in. Built with ``trusted``: the event
    was validated when it was decoded, and every value here comes from it."""
    at = utc(event.event_time)
    ids = [event.event_id]
    if event.kind == "storage" and event.storage is not None:
        return trusted(
            LinkedArtifactState, key=event.key, version=1, event_ids=ids, storage=_storage(event, event.storage, at)
        )
    if event.kind == "build" and event.build is not None:
        return trusted(
            LinkedArtifactState, key=event.key, version=1, event_ids=ids, builds=[_build(event, event.build, at)]
        )
    if event.kind == "deployment" and event.deployment is not None:
        deployments = [_deployment(event, event.deployment, at)]
        return trusted(LinkedArtifactState, key=event.key, version=1, event_ids=ids, deployments=deployments)
    if event.kind == "alert" and event.alert is not None:
        return trusted(
            LinkedArtifactState, key=event.key, version=1, event_ids=ids, alerts=[_alert(event, event.alert, at)]
        )
    if event.kind == "link" and event.link is not None:
        return trusted(
            LinkedArtifactState, key=event.key, version=1, event_ids=ids, links=[_link(event, event.link)]
        )
    raise MergeError(
        f"{event.kind}: event {event.event_id} of kind {event.kind} has no {event.kind} body",
        field=event.kind,
    )


def _registers(record_type: type[Record], values: dict[str, Any], stamp: Stamp) -> dict[str, Any]:
    """Register fields of one contribution: every non-empty value is stamped with the event's stamp."""
    out: dict[str, Any] = {}
    for name in record_type.LWW_FIELDS:
        value = values.get(name)
        if value is None or value == {} or value == []:
            continue
        out[name] = value
    out["register_stamps"] = one_group(out, stamp)
    return out


def _storage(event: ArtifactEvent, body: StorageBody, at: datetime) -> list[StorageLocation]:
    registry_url = body.registry_url.rstrip("/")
    path = body.path or ""
    stamp = Stamp(at=at, rank=STORAGE_RANK[body.status], event_id=event.event_id)
    values = body.model_dump(include=set(StorageLocation.LWW_FIELDS))
    here = StorageLocation(
        registry_url=registry_url,
        repository=body.repository,
        path=path,
        status=body.status,
        first_seen=at,
        last_seen=at,
        tags=[TagObservation(tag=tag, observed_at=[at]) for tag in sorted(set(body.tags))],
        history=[LocationChange(action=body.action, status=body.status, stamp=stamp, source=event.source)],
        sources=[event.source],
        **_registers(StorageLocation, values, stamp),
    )
    locations = [here]
    # A move (or a promotion that moves) retires the location it left; a copy leaves the source in place.
    moved = body.previous_repository is not None or body.previous_path is not None
    if moved and body.action != "copied":
        old_repository = body.previous_repository if body.previous_repository is not None else body.repository
        old_path = body.previous_path if body.previous_path is not None else path
        if (old_repository, old_path) != (body.repository, path):
            retired = Stamp(at=at, rank=STORAGE_RANK["deleted"], event_id=event.event_id)
            locations.append(
                StorageLocation(
                    registry_url=registry_url,
                    repository=old_repository,
                    path=old_path,
                    status="deleted",
                    first_seen=at,
                    last_seen=at,
                    history=[
                        LocationChange(action="moved", status="deleted", stamp=retired, source=event.source)
                    ],
                    sources=[event.source],
                    **_registers(StorageLocation, {"registry": body.registry}, retired),
                )
            )
    return sorted(locations, key=location_identity)


def _with_invocation(body: BuildBody) -> BuildBody:
    """Fill repository, run id and attempt from a GitHub invocation id: provenance then meets its run."""
    match = _GITHUB_INVOCATION.match(body.invocation_id or "")
    if match is None:
        return body
    repository, run_id, attempt = match.group(1), int(match.group(2)), match.group(3)
    return body.model_copy(
        update={
            "repository": body.repository or repository,
            "workflow_run_id": body.workflow_run_id if body.workflow_run_id is not None else run_id,
            "run_attempt": body.run_attempt
            if body.run_attempt is not None or attempt is None
            else int(attempt),
        }
    )


def _build(event: ArtifactEvent, body: BuildBody, at: datetime) -> BuildRecord:
    body = _with_invocation(body)
    stamp = Stamp(at=at, rank=BUILD_RANK.get(body.status or "", 0), event_id=event.event_id)
    return BuildRecord(
        build_key=build_key(body, event_id=event.event_id),
        first_seen=at,
        last_seen=at,
        sources=[event.source],
        **_registers(BuildRecord, body.model_dump(), stamp),
    )


def _deployment(event: ArtifactEvent, body: DeploymentBody, at: datetime) -> DeploymentRecord:
    stamp = trusted(Stamp, at=at, rank=DEPLOYMENT_RANK[body.status], event_id=event.event_id)
    # An empty risk list with a named asserter means "no risks now"; with no asserter it says nothing.
    asserter = body.risks_asserted_by or (event.source if body.runtime_risks else None)
    assertions = []
    if asserter is not None:
        assertions.append(
            trusted(RiskAssertion, asserted_by=asserter, risks=sorted(set(body.runtime_risks)), stamp=stamp)
        )
    values = {name: getattr(body, name) for name in DeploymentRecord.LWW_FIELDS}
    values["tags"] = dict(sorted(body.tags.items()))
    return trusted(
        DeploymentRecord,
        slot=slot_key(
            body.logical_environment, body.physical_environment, body.cluster, body.deployment_name
        ),
        logical_environment=body.logical_environment,
        physical_environment=body.physical_environment,
        cluster=body.cluster,
        deployment_name=body.deployment_name,
        status=body.status,
        first_seen=at,
        last_seen=at,
        history=[trusted(StatusChange, status=body.status, stamp=stamp, source=event.source)],
        risk_assertions=assertions,
        sources=[event.source],
        **_registers(DeploymentRecord, values, stamp),
    )


def _alert(event: ArtifactEvent, body: AlertBody, at: datetime) -> AlertRecord:
    stamp = trusted(Stamp, at=at, rank=ALERT_RANK[body.state], event_id=event.event_id)
    values = {name: getattr(body, name) for name in AlertRecord.LWW_FIELDS}
    return trusted(
        AlertRecord,
        alert_key=body.alert_key,
        aliases=sorted(set(body.aliases)),
        first_seen=at,
        last_seen=at,
        sources=[event.source],
        **values,
        register_stamps=one_group([k for k, v in values.items() if v is not None], stamp),
    )


def _link(event: ArtifactEvent, body: LinkBody) -> LinkRecord:
    return LinkRecord(
        index_digest=body.index_digest,
        platform_digest=body.platform_digest,
        platform=body.platform,
        sources=[event.source],
    )


# --- joins of records ------------------------------------------------------------------------------------


def _union_sorted(a: list[str], b: list[str]) -> list[str]:
    if not b or a == b:
        return a
    if len(b) == 1:
        # The common case (one new event id): insert in place instead of re-sorting everything.
        position = bisect_left(a, b[0])
        if position < len(a) and a[position] == b[0]:
            return a
        return [*a[:position], b[0], *a[position:]]
    return sorted(set(a) | set(b))


def _union_by(a: Iterable[T], b: Iterable[T], key: Callable[[T], Any]) -> list[T]:
    """Union of two lists of frozen values, deduplicated and sorted by ``key`` (which identifies a value)."""
    merged = {key(item): item for item in a}
    for item in b:
        merged.setdefault(key(item), item)
    return [merged[k] for k in sorted(merged)]


def _join_keyed(a: list[T], b: list[T], *, key: Callable[[T], Any], join: Callable[[T, T], T]) -> list[T]:
    """Join two canonical lists of records: records with the same identity are joined, the rest kept."""
    if not b:
        return a
    if len(b) == 1:
        # The common case (one event or one message): find its place instead of rebuilding the list.
        (item,) = b
        identity = key(item)
        position = bisect_left(a, identity, key=key)
        if position < len(a) and key(a[position]) == identity:
            return [*a[:position], join(a[position], item), *a[position + 1 :]]
        return [*a[:position], item, *a[position:]]
    merged: dict[Any, T] = {key(item): item for item in a}
    for item in b:
        identity = key(item)
        current = merged.get(identity)
        merged[identity] = item if current is None else join(current, item)
    return [merged[identity] for identity in sorted(merged)]


def _wins(stamp_a: Stamp, value_a: Any, stamp_b: Stamp, value_b: Any) -> bool:
    """Does register value a beat b? By stamp; on an equal stamp by canonical value (a symmetric pick)."""
    if stamp_a.order != stamp_b.order:
        return stamp_a.order > stamp_b.order
    return canonical_json(value_a) >= canonical_json(value_b)


def _join_registers(a: Record, b: Record) -> dict[str, Any]:
    update: dict[str, Any] = {}
    stamps: dict[str, Stamp] = {}
    stamps_a, stamps_b = a.field_stamps(), b.field_stamps()
    for name in type(a).LWW_FIELDS:
        stamp_a, stamp_b = stamps_a.get(name), stamps_b.get(name)
        value_a, value_b = getattr(a, name), getattr(b, name)
        if stamp_b is None or (stamp_a is not None and _wins(stamp_a, value_a, stamp_b, value_b)):
            winner, value = stamp_a, value_a
        else:
            winner, value = stamp_b, value_b
        update[name] = value
        if winner is not None:
            stamps[name] = winner
    update["register_stamps"] = group_stamps(stamps)
    update["sources"] = sorted(set(a.sources) | set(b.sources))
    return update


def _latest(changes: list[T], stamp_of: Callable[[T], Stamp]) -> T:
    """The last change of a history sorted by stamp order."""
    top = stamp_of(changes[-1]).order
    tied = list(takewhile(lambda change: stamp_of(change).order == top, reversed(changes)))
    # Only an event id re-sent with other content can tie; the canonical text keeps the pick order-free.
    return tied[0] if len(tied) == 1 else max(tied, key=canonical_json)


def _join_location(a: StorageLocation, b: StorageLocation) -> StorageLocation:
    history = _union_by(a.history, b.history, key=lambda c: (c.stamp.order, c.action, c.status, c.source))
    tags: dict[str, list[datetime]] = {}
    for observation in [*a.tags, *b.tags]:
        tags.setdefault(observation.tag, []).extend(observation.observed_at)
    return a.model_copy(
        update={
            **_join_registers(a, b),
            "status": _latest(history, lambda c: c.stamp).status,
            "first_seen": min(a.first_seen, b.first_seen),
            "last_seen": max(a.last_seen, b.last_seen),
            "tags": [
                TagObservation(tag=tag, observed_at=sorted(set(times))) for tag, times in sorted(tags.items())
            ],
            "history": history,
        }
    )


def _join_build(a: BuildRecord, b: BuildRecord) -> BuildRecord:
    return a.model_copy(
        update={
            **_join_registers(a, b),
            "first_seen": min(a.first_seen, b.first_seen),
            "last_seen": max(a.last_seen, b.last_seen),
        }
    )


def _join_deployment(a: DeploymentRecord, b: DeploymentRecord) -> DeploymentRecord:
    history = _union_by(a.history, b.history, key=lambda c: (c.stamp.order, c.status, c.source))
    assertions: dict[str, RiskAssertion] = {}
    for assertion in [*a.risk_assertions, *b.risk_assertions]:
        current = assertions.get(assertion.asserted_by)
        if current is None or _wins(assertion.stamp, assertion.risks, current.stamp, current.risks):
            assertions[assertion.asserted_by] = assertion
    return a.model_copy(
        update={
            **_join_registers(a, b),
            "status": _latest(history, lambda c: c.stamp).status,
            "first_seen": min(a.first_seen, b.first_seen),
            "last_seen": max(a.last_seen, b.last_seen),
            "history": history,
            "risk_assertions": [assertions[name] for name in sorted(assertions)],
        }
    )


def _join_alert(a: AlertRecord, b: AlertRecord) -> AlertRecord:
    return a.model_copy(
        update={
            **_join_registers(a, b),
            "aliases": sorted(set(a.aliases) | set(b.aliases)),
            "first_seen": min(a.first_seen, b.first_seen),
            "last_seen": max(a.last_seen, b.last_seen),
        }
    )


def _join_link(a: LinkRecord, b: LinkRecord) -> LinkRecord:
    # The platform never changes for a digest; max() only makes a conflicting report order-free.
    platforms = [p for p in (a.platform, b.platform) if p is not None]
    return a.model_copy(
        update={
            "platform": max(platforms) if platforms else None,
            "sources": sorted(set(a.sources) | set(b.sources)),
        }
    )


def _snapshot_key(derived: Derived) -> tuple[str, str]:
    return (derived.origin_key, derived.kind)


def _join_snapshot(a: Derived, b: Derived) -> Derived:
    """Keep the newer snapshot of one origin's payload.

    A higher origin version is newer (equal versions carry equal payloads by construction; the canonical
    comparison only keeps the choice symmetric if a sender ever broke that). Slot verdicts carry no
    version: ``newer_verdict`` says which is newer, both as a ``slot-holder`` payload and inside
    ``linked-context``, where an index re-sends them under the same version when only they moved.
    """
    if a == b:
        return a
    if a.kind == "slot-holder":
        return a if newer_verdict(a.slot_end, b.slot_end) is a.slot_end else b
    if a.origin_version != b.origin_version:
        newer = a if a.origin_version > b.origin_version else b
    elif a.slot_ends != b.slot_ends and a.model_copy(update={"slot_ends": b.slot_ends}) == b:
        newer = a  # only the verdicts differ: joined below
    else:
        newer = a if canonical_json(a) >= canonical_json(b) else b
    if a.kind != "linked-context" or a.slot_ends == b.slot_ends:
        return newer
    ends: dict[str, SlotEnd] = {end.slot: end for end in a.slot_ends}
    for end in b.slot_ends:
        current = ends.get(end.slot)
        ends[end.slot] = end if current is None else newer_verdict(current, end) or end
    joined = [ends[slot] for slot in sorted(ends) if _current(ends[slot], newer.deployments)]
    return newer.model_copy(update={"slot_ends": joined})


def _current(verdict: SlotEnd | None, deployments: list[DeploymentRecord]) -> bool:
    """Does a slot's verdict still speak about the member's latest deployment there?

    Only verdicts with an end are sent, about the member's latest deployed change as the slot knew it. Once
    the member's own history has a later one, that verdict is stale, and so is every verdict about an
    older change: dropping them (rather than keeping whichever arrived) keeps the state order-free, and
    the slot sends a verdict about the newer change if something ends it too.
    """
    if verdict is None or verdict.end is None or verdict.member_latest is None:
        return False
    for record in deployments:
        if record.slot == verdict.slot:
            latest = max((c.stamp.order for c in record.history if c.status == "deployed"), default=None)
            return latest is None or verdict.member_latest.order >= latest
    return True
