"""Facts that cross keys, and the linked view of one key.

The processor is partitioned by key, so a state can only read its own events. Facts another key needs
travel as ``Derived`` messages: after each change, ``derived_from(before, after)`` lists the messages the
change must send; the processor delivers each to ``target_key``'s state with ``apply_derived``.

Protocol (origin -> target: payload; origin_version counts exactly the inputs of that payload):

- ``repo-member``: digest -> ``repo:X``, no payload ("a build of mine names repository X"); version 1.
- ``run-member``: digest -> ``run:X/N``, no payload ("a build of mine names run N of X"); version 1.
- ``slot-member``: digest -> ``slot:...``, ``history`` = the digest's own changes in that slot;
  version = the number of those changes.
- ``repo-alerts``: ``repo:X`` -> each repo-member, ``alerts`` = the repository's alerts;
  version = events merged by ``repo:X``.
- ``run-build``: ``run:X/N`` -> each run-member, ``builds`` = the run's builds (one per attempt);
  version = events merged by ``run:X/N``.
- ``slot-holder``: ``slot:...`` -> each slot-member whose latest deployment there has ended, ``slot_end``
  = what ended it (another digest: superseded; a slot-keyed decommission); no version (0): verdicts are
  ordered by themselves (``pipeline.state.newer_verdict``), and one is sent only when it moves. The
  receiver drops a verdict about an older deployment than its own latest (``pipeline.merge._current``).
- ``linked-context``: digest -> each digest it is linked to (own link events, or a peer that named the
  link), ``link`` = the link; an index adds its own ``deployments`` and its slots' verdicts
  (``slot_ends``), a platform its own digest-level ``alerts``; version = events merged by the digest.
  It is re-sent when the version or one of the verdicts moves; the receiver keeps the greatest verdict
  per slot.

Why it converges whatever the order, with any duplicates:

- The receiver keeps one snapshot per (origin_key, kind): the highest origin_version, and for verdicts
  the newest by ``newer_verdict`` (``pipeline.merge``).
- Each origin_version counts the inputs its payload is computed from, and a verdict only moves up its
  order, so along an origin's history an unchanged version and verdicts mean an unchanged payload, and a
  sender's last message to a target is its final one. ``derived_from`` therefore sends a message exactly
  when a (target, kind) is new or its version or verdicts moved.
- Payloads carry only the origin's own facts and the verdicts of its slots, never what it inherited
  through ``linked-context``, ``repo-alerts`` or ``run-build``. The inputs form no cycle (digest -> slot
  -> digest -> linked digest ends there), so the exchange stops, and every state ends as the join of its
  own events with the final payloads of its origins: the same value for every delivery order.
- Membership only grows (links, builds, slots are never forgotten), so a target once reached stays reached;
  a new target (a digest that joins a repository, a platform that learns its index) gets the current
  payload at once.

Cost to keep in mind: a repository sends to every member whenever its version moves (one repository
alert update reaches every digest built from it). A slot sends to a member only when that member's
verdict moves (about twice per release: deployed, then superseded), not on every change in the slot: with
releases succeeding each other, per-change verdicts to every past member made the exchange quadratic.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from linked_artifacts.events import repo_key, run_key
from pipeline.merge import join_builds, join_links, link_identity
from pipeline.state import (
    AlertRecord,
    BuildRecord,
    DeploymentRecord,
    Derived,
    DerivedKind,
    EndReason,
    LinkedArtifactState,
    LinkRecord,
    SlotEnd,
    Stamp,
    StatusChange,
    StorageLocation,
    key_role,
    state_fingerprint,
    trusted,
)

Target = tuple[str, DerivedKind]

_MEMBER_REPLY: dict[DerivedKind, tuple[str, DerivedKind]] = {
    # member kind -> (role of the key that answers it, kind of the answer)
    "repo-member": ("repository", "repo-alerts"),
    "run-member": ("run", "run-build"),
    "slot-member": ("slot", "slot-holder"),
}


V = TypeVar("V")


class _ByIdentity(Generic[V]):
    """A pure function of a state, its results remembered for recent states by the state's identity (the
    results are read-only). An entry holds its state, so an id is not reused while cached; at ``kept``
    entries the cache starts over."""

    def __init__(self, compute: Callable[[LinkedArtifactState], V], *, kept: int) -> None:
        self.compute = compute
        self.kept = kept
        self.entries: dict[int, tuple[LinkedArtifactState, V]] = {}

    def __call__(self, state: LinkedArtifactState) -> V:
        cached = self.entries.get(id(state))
        if cached is not None and cached[0] is state:
            return cached[1]
        result = self.compute(state)
        if len(self.entries) >= self.kept:
            self.entries.clear()
        self.entries[id(state)] = (state, result)
        return result

    def take(self, state: LinkedArtifactState) -> V:
        """The result for a state about to be replaced, its entry dropped."""
        cached = self.entries.pop(id(state), None)
        return cached[1] if cached is not None and cached[0] is state else self.compute(state)


# --- messages --------------------------------------------------------------------------------------------


def derived_from(before: LinkedArtifactState, after: LinkedArtifactState) -> list[Derived]:
    """The messages the change from ``before`` to ``after`` must send, sorted by (target, kind)."""
    old = plan_of.take(before)  # `before` is replaced: its entry would keep it alive until the next clear
    build = _Messages(after)
    return [
        build(target=target, kind=kind, version=version)
        for (target, kind), (version, token) in sorted(plan_of(after).items())
        if old.get((target, kind)) != (version, token)
    ]


def outgoing(state: LinkedArtifactState) -> list[Derived]:
    """Every message this state stands behind now (a full resend, e.g. after restoring a state)."""
    build = _Messages(state)
    return [build(target=t, kind=k, version=v) for (t, k), (v, _) in sorted(plan_of(state).items())]


def _snapshots(state: LinkedArtifactState, kind: DerivedKind) -> list[Derived]:
    return [d for d in state.inherited if d.kind == kind]


def _own_version(state: LinkedArtifactState) -> int:
    return len(state.event_ids)


def _verdict_token(verdict: SlotEnd | None) -> tuple[Any, ...]:
    if verdict is None:
        return ()
    latest = verdict.member_latest.order if verdict.member_latest is not None else None
    return (latest, verdict.end.order if verdict.end is not None else None)


# What a plan names per message: its origin_version, and a token that moves exactly when its payload does.
Plan = dict[Target, tuple[int, Any]]


def _plan(state: LinkedArtifactState) -> Plan:
    """(target, kind) -> (origin_version, token) of every message this state stands behind."""
    plan: Plan = {}
    role = key_role(state.key)
    own = _own_version(state)
    if role == "digest":
        peers = _linked_peers(state)
        if peers:
            ends = tuple(
                (d.slot_end.slot, _verdict_token(d.slot_end))
                for d in _snapshots(state, "slot-holder")
                if d.slot_end is not None
            )
            for peer in peers:
                plan[(peer, "linked-context")] = (own, ends)
        for build in state.builds:
            if build.repository:
                plan[(repo_key(build.repository), "repo-member")] = (1, None)
                if build.workflow_run_id is not None:
                    plan[(run_key(build.repository, build.workflow_run_id), "run-member")] = (1, None)
        for deployment in state.deployments:
            plan[(deployment.slot, "slot-member")] = (len(deployment.history), None)
    plan.update(_replies(state, role, own))
    return {target: entry for target, entry in plan.items() if target[0] != state.key}


# A change is planned against the state it replaces, which the previous batch planned as its new state:
# without this every state is planned twice. Large enough for every key of a batch.
plan_of = _ByIdentity(_plan, kept=65_536)


def _replies(state: LinkedArtifactState, role: str, own: int) -> Plan:
    """What a repository, run or slot key answers its members."""
    plan: Plan = {}
    verdicts: dict[str, Verdict] | None = None
    for snapshot in state.inherited:
        reply = _MEMBER_REPLY.get(snapshot.kind)
        if reply is None or reply[0] != role:
            continue
        if reply[1] == "slot-holder":
            if verdicts is None:
                verdicts = slot_verdicts(state)
            verdict = verdicts.get(snapshot.origin_key)
            # Only an end is news: without one the member's own history already says it is deployed.
            if verdict is not None:
                plan[(snapshot.origin_key, "slot-holder")] = (0, verdict.token)
        else:
            plan[(snapshot.origin_key, reply[1])] = (own, None)
    return plan


def _linked_peers(state: LinkedArtifactState) -> set[str]:
    """Digests this digest is linked to, from its own links or from a peer that named the link."""
    peers = {link.platform_digest for link in state.links if link.index_digest == state.key}
    peers |= {link.index_digest for link in state.links if link.platform_digest == state.key}
    peers |= {d.origin_key for d in _snapshots(state, "linked-context")}
    return peers


def _own_link(state: LinkedArtifactState, peer: str) -> LinkRecord:
    for link in state.links:
        if {link.index_digest, link.platform_digest} == {state.key, peer}:
            return link
    # Known only from the peer's message: answer with the bare link, so the payload stays a function of
    # this state's own events (the peer's details are the peer's to send).
    for snapshot in _snapshots(state, "linked-context"):
        if snapshot.origin_key == peer and snapshot.link is not None:
            return LinkRecord(
                index_digest=snapshot.link.index_digest, platform_digest=snapshot.link.platform_digest
            )
    raise AssertionError(f"no link between {state.key} and {peer}")  # _plan only names linked peers


class _Messages:
    """Builds the messages of one state; the slot's verdicts are computed once for all its members."""

    def __init__(self, state: LinkedArtifactState) -> None:
        self.state = state
        self._verdicts: dict[str, Verdict] | None = None

    def __call__(self, *, target: str, kind: DerivedKind, version: int) -> Derived:
        state = self.state
        base: dict[str, Any] = {
            "target_key": target,
            "origin_key": state.key,
            "origin_version": version,
            "kind": kind,
        }
        if kind == "linked-context":
            link = _own_link(state, target)
            if link.index_digest == state.key:
                base["deployments"] = state.deployments
                base["slot_ends"] = sorted(
                    (d.slot_end for d in _snapshots(state, "slot-holder") if d.slot_end is not None),
                    key=lambda end: end.slot,
                )
            else:
                base["alerts"] = [alert for alert in state.alerts if alert.scope == "digest"]
            base["link"] = link
        elif kind == "repo-alerts":
            base["alerts"] = state.alerts
        elif kind == "run-build":
            base["builds"] = state.builds
        elif kind == "slot-holder":
            if self._verdicts is None:
                self._verdicts = slot_verdicts(state)
            base["slot_end"] = self._verdicts[target].to_slot_end()
        elif kind == "slot-member":
            base["history"] = next(d.history for d in state.deployments if d.slot == target)
        return trusted(Derived, **base)  # built from this valid state


# --- the slot's verdicts ---------------------------------------------------------------------------------


class Verdict(NamedTuple):
    """A member's verdict before it is a ``SlotEnd``: a slot computes one for every member whose deployment
    ended, and only those that moved are sent, so the model is built only for those (``to_slot_end``)."""

    slot: str
    member_latest: Stamp
    end: Stamp
    ended_by: str  # '' for a slot-keyed decommission

    @property
    def token(self) -> tuple[Any, ...]:
        return (self.member_latest.order, self.end.order)  # as _verdict_token of its SlotEnd

    def to_slot_end(self) -> SlotEnd:
        return trusted(
            SlotEnd,
            slot=self.slot,
            member_latest=self.member_latest,
            end=self.end,
            end_reason="superseded" if self.ended_by else "slot-decommissioned",
            ended_by=self.ended_by or None,
        )


def _slot_verdicts(state: LinkedArtifactState) -> dict[str, Verdict]:
    """For a slot's state: for each member digest whose latest deployment there has ended, what ended it.

    A member's deployment ends at the first change after its own latest deployed change that is either
    another digest deployed into the slot (superseded) or a slot-keyed decommission (slot-decommissioned).
    A member that still holds its deployment has no verdict (nothing to send, see ``_replies``).
    """
    enders: list[tuple[tuple[datetime, int, str], str, Stamp]] = [
        (stamp.order, "", stamp) for stamp in _slot_decommissions(state)
    ]
    latest: dict[str, tuple[tuple[datetime, int, str], Stamp]] = {}
    for snapshot in _snapshots(state, "slot-member"):
        digest = snapshot.origin_key
        for change in snapshot.history:
            if change.status == "deployed":
                order = change.stamp.order
                enders.append((order, digest, change.stamp))
                if digest not in latest or order > latest[digest][0]:
                    latest[digest] = (order, change.stamp)
    enders.sort(key=lambda item: (item[0], item[1]))
    orders = [item[0] for item in enders]
    verdicts: dict[str, Verdict] = {}
    for member, (order, stamp) in latest.items():
        position = bisect_right(orders, order)
        if position == len(enders):
            continue
        _, by, end = enders[position]
        verdicts[member] = Verdict(state.key, stamp, end, by)
    return verdicts


# A batch plans the slot state it read and the one it writes: each slot state's verdicts would otherwise be
# computed twice.
slot_verdicts = _ByIdentity(_slot_verdicts, kept=2_048)


def slot_holder(state: LinkedArtifactState) -> SlotEnd:
    """For a slot's state: the member with the latest deployed change, and whether it is still deployed."""
    members = {d.origin_key: d.history for d in _snapshots(state, "slot-member")}
    slot_ends = _slot_decommissions(state)
    deployed = [
        (c.stamp.order, digest, c.stamp)
        for digest, history in members.items()
        for c in history
        if c.status == "deployed"
    ]
    if not deployed:
        return SlotEnd(slot=state.key)
    _, digest, since = max(deployed, key=lambda item: (item[0], item[1]))
    active = not _ended_after(since, members[digest], slot_ends)
    return SlotEnd(slot=state.key, holder_digest=digest, holder_since=since, slot_active=active)


def _slot_decommissions(state: LinkedArtifactState) -> list[Stamp]:
    return [
        change.stamp
        for record in state.deployments
        if record.slot == state.key
        for change in record.history
        if change.status == "decommissioned"
    ]


def _latest_deployed(history: Iterable[StatusChange]) -> Stamp | None:
    stamps = [change.stamp for change in history if change.status == "deployed"]
    return max(stamps, key=lambda s: s.order) if stamps else None


def _ended_after(since: Stamp, own_history: Iterable[StatusChange], slot_ends: list[Stamp]) -> bool:
    own = [c.stamp for c in own_history if c.status == "decommissioned"]
    return any(stamp.order > since.order for stamp in [*own, *slot_ends])


def effective_end(
    record: DeploymentRecord, verdict: SlotEnd | None
) -> tuple[Stamp | None, EndReason | None, str | None]:
    """When, why and by whom this deployment ended; (None, None, None) while it is active.

    The earliest of: the record's own decommission after its latest deployed change, and the slot's verdict
    when that is later than the latest deployed change (a verdict computed from older knowledge is ignored).
    """
    latest = _latest_deployed(record.history)
    candidates: list[tuple[Stamp, EndReason, str | None]] = [
        (c.stamp, "decommissioned", None)
        for c in record.history
        if c.status == "decommissioned" and (latest is None or c.stamp.order > latest.order)
    ]
    if (
        verdict is not None
        and verdict.end is not None
        and verdict.end_reason is not None
        and latest is not None
    ):
        if verdict.end.order > latest.order:
            candidates.append((verdict.end, verdict.end_reason, verdict.ended_by))
    if not candidates:
        return None, None, None
    return min(candidates, key=lambda candidate: candidate[0].order)


# --- the view ------------------------------------------------------------------------------------------


def linked_view(state: LinkedArtifactState) -> dict[str, Any]:
    """The JSON-ready linked view of one key (field names are a contract of the enriched topic).

    ``deployments`` and ``alerts`` hold the key's own facts; ``effective`` adds what reaches it from other
    keys: its index's deployments (``inherited_from``), its platforms' alerts and its repositories' alerts
    (``via`` and ``via_kind``).
    """
    verdicts = {
        d.slot_end.slot: d.slot_end for d in _snapshots(state, "slot-holder") if d.slot_end is not None
    }
    own_deployments = [
        _deployment_view(r, verdicts.get(r.slot), inherited_from=None) for r in state.deployments
    ]
    index_deployments = []
    platform_alerts = []
    for snapshot in _snapshots(state, "linked-context"):
        ends = {end.slot: end for end in snapshot.slot_ends}
        index_deployments += [
            _deployment_view(r, ends.get(r.slot), inherited_from=snapshot.origin_key)
            for r in snapshot.deployments
        ]
        platform_alerts += [
            _alert_view(a, via=snapshot.origin_key, via_kind="platform") for a in snapshot.alerts
        ]
    repo_alerts = [
        _alert_view(a, via=snapshot.origin_key, via_kind="repository")
        for snapshot in _snapshots(state, "repo-alerts")
        for a in snapshot.alerts
    ]
    own_alerts = [_alert_view(a, via=None, via_kind="own") for a in state.alerts]
    deployments = own_deployments + index_deployments
    alerts = own_alerts + platform_alerts + repo_alerts
    active = [d for d in deployments if d["active"]]
    view: dict[str, Any] = {
        "key": state.key,
        "role": key_role(state.key),
        "version": state.version,
        "fingerprint": state_fingerprint(state),
        "event_count": len(state.event_ids),
        "storage": [_location_view(location) for location in state.storage],
        "builds": [_build_view(build) for build in effective_builds(state)],
        "deployments": own_deployments,
        "alerts": own_alerts,
        "linked_digests": _linked_view(state),
        "effective": {
            "deployed": bool(active),
            "runtime_risks": sorted({risk["risk"] for d in active for risk in d["runtime_risks"]}),
            "environments": sorted({d["logical_environment"] for d in active}),
            "deployments": deployments,
            "alerts": alerts,
            "open_alerts": sum(1 for alert in alerts if alert["state"] == "open"),
        },
    }
    members = sorted({d.origin_key for d in state.inherited if d.kind in _MEMBER_REPLY})
    if members:
        view["members"] = members
    if key_role(state.key) == "slot":
        view["slot"] = _slot_view(state)
    return view


def effective_builds(state: LinkedArtifactState) -> list[BuildRecord]:
    """Own builds, each combined with the same build as its workflow run's key knows it; builds known only
    from image labels (commit + repository) folded into the richer builds of the same commit."""
    builds = {build.build_key: build for build in state.builds}
    for snapshot in _snapshots(state, "run-build"):
        for run_build in snapshot.builds:
            if run_build.build_key in builds:
                builds[run_build.build_key] = join_builds(builds[run_build.build_key], run_build)
    for key in sorted(k for k in builds if k.startswith("commit:")):
        label = builds[key]
        richer = [k for k, b in builds.items() if not k.startswith("commit:") and _same_commit(b, label)]
        for target in richer:
            builds[target] = join_builds(builds[target], label.model_copy(update={"build_key": target}))
        if richer:
            del builds[key]
    return [builds[key] for key in sorted(builds)]


def _same_commit(a: BuildRecord, b: BuildRecord) -> bool:
    return (
        a.repository is not None
        and b.repository is not None
        and a.commit is not None
        and b.commit is not None
        and a.repository.lower() == b.repository.lower()
        and a.commit.lower() == b.commit.lower()
    )


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _stamp_view(stamp: Stamp) -> dict[str, Any]:
    return {"at": _time(stamp.at), "event_id": stamp.event_id}


def _location_view(location: StorageLocation) -> dict[str, Any]:
    return {
        "registry": location.registry,
        "registry_url": location.registry_url,
        "repository": location.repository,
        "path": location.path,
        "artifact_url": location.artifact_url,
        "name": location.name,
        "version": location.version,
        "size": location.size,
        "media_type": location.media_type,
        "github_repository": location.github_repository,
        "status": location.status,
        "first_seen": _time(location.first_seen),
        "last_seen": _time(location.last_seen),
        "tags": [
            {
                "tag": tag.tag,
                "first_seen": _time(tag.observed_at[0]),
                "last_seen": _time(tag.observed_at[-1]),
                "observed_at": [_time(t) for t in tag.observed_at],
            }
            for tag in location.tags
        ],
        "history": [
            {"action": c.action, "status": c.status, "source": c.source, **_stamp_view(c.stamp)}
            for c in location.history
        ],
        "sources": location.sources,
    }


def _build_view(build: BuildRecord) -> dict[str, Any]:
    has_run = build.workflow_run_id is not None
    has_provenance = any(
        v is not None
        for v in (build.predicate_type, build.attestation_sha256, build.invocation_id, build.build_type)
    )
    return {
        "build_key": build.build_key,
        "repository": build.repository,
        "commit": build.commit,
        "ref": build.ref,
        "builder_id": build.builder_id,
        "workflow_run": {
            "id": build.workflow_run_id,
            "attempt": build.run_attempt,
            "name": build.workflow_name,
            "path": build.workflow_path,
            "status": build.status,
            "conclusion": build.conclusion,
            "url": build.run_url,
        }
        if has_run
        else None,
        "provenance": {
            "predicate_type": build.predicate_type,
            "builder_id": build.builder_id,
            "build_type": build.build_type,
            "invocation_id": build.invocation_id,
            "attestation_sha256": build.attestation_sha256,
            "subject_name": build.subject_name,
        }
        if has_provenance
        else None,
        "sources": build.sources,
        "first_seen": _time(build.first_seen),
        "last_seen": _time(build.last_seen),
    }


def _deployment_view(
    record: DeploymentRecord, verdict: SlotEnd | None, *, inherited_from: str | None
) -> dict[str, Any]:
    end, reason, ended_by = effective_end(record, verdict)
    risks: dict[str, list[dict[str, Any]]] = {}
    for assertion in record.risk_assertions:
        for risk in assertion.risks:
            risks.setdefault(risk, []).append(
                {"asserted_by": assertion.asserted_by, "at": _time(assertion.stamp.at)}
            )
    return {
        "slot": record.slot,
        "logical_environment": record.logical_environment,
        "physical_environment": record.physical_environment,
        "cluster": record.cluster,
        "deployment_name": record.deployment_name,
        "status": "decommissioned" if end is not None else "deployed",
        "active": end is None,
        "first_seen": _time(record.first_seen),
        "last_seen": _time(record.last_seen),
        "ended_at": _time(end.at) if end is not None else None,
        "end_reason": reason,
        "superseded_by": ended_by,
        "runtime_risks": [{"risk": risk, "asserted_by": risks[risk]} for risk in sorted(risks)],
        "name": record.name,
        "version": record.version,
        "namespace": record.namespace,
        "workload": record.workload,
        "container": record.container,
        "image_ref": record.image_ref,
        "github_repository": record.github_repository,
        "tags": record.tags,
        "sources": record.sources,
        "inherited_from": inherited_from,
        "history": [{"status": c.status, "source": c.source, **_stamp_view(c.stamp)} for c in record.history],
    }


def _alert_view(alert: AlertRecord, *, via: str | None, via_kind: str) -> dict[str, Any]:
    return {
        "alert_key": alert.alert_key,
        "scope": alert.scope,
        "repository": alert.repository,
        "vulnerability_id": alert.vulnerability_id,
        "aliases": alert.aliases,
        "package_name": alert.package_name,
        "package_version": alert.package_version,
        "purl": alert.purl,
        "fixed_version": alert.fixed_version,
        "severity": alert.severity,
        "cvss_score": alert.cvss_score,
        "cvss_vector": alert.cvss_vector,
        "epss": alert.epss,
        "epss_percentile": alert.epss_percentile,
        "state": alert.state,
        "tool": alert.tool,
        "title": alert.title,
        "url": alert.url,
        "first_seen": _time(alert.first_seen),
        "last_seen": _time(alert.last_seen),
        "sources": alert.sources,
        "via": via,
        "via_kind": via_kind,
    }


def _linked_view(state: LinkedArtifactState) -> list[dict[str, Any]]:
    links = {link_identity(link): link for link in state.links}
    for snapshot in _snapshots(state, "linked-context"):
        if snapshot.link is not None:
            identity = link_identity(snapshot.link)
            links[identity] = (
                join_links(links[identity], snapshot.link) if identity in links else snapshot.link
            )
    out = []
    for identity in sorted(links):
        link = links[identity]
        if state.key not in identity:
            continue
        peer_is_index = link.index_digest != state.key
        out.append(
            {
                "digest": link.index_digest if peer_is_index else link.platform_digest,
                "role": "index" if peer_is_index else "platform",
                "platform": link.platform,
                "sources": link.sources,
            }
        )
    return out


def _slot_view(state: LinkedArtifactState) -> dict[str, Any]:
    holder = slot_holder(state)
    return {
        "holder_digest": holder.holder_digest,
        "holder_since": _time(holder.holder_since.at) if holder.holder_since else None,
        "active": holder.slot_active,
    }


__all__ = [
    "derived_from",
    "effective_builds",
    "effective_end",
    "linked_view",
    "outgoing",
    "slot_holder",
    "slot_verdicts",
]
