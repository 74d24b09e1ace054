"""The linked-artifact state of one key, and the order that ranks every change to it.

One ``LinkedArtifactState`` exists per Kafka key: a digest (``sha256:..``), a repository
(``repo:owner/name``), a deployment slot (``slot:logical/physical/cluster/name``) or a workflow run
(``run:owner/repo/<run id>``).
Every key has the same shape; what a key does with it (which messages it sends) depends on its role.

The state is a join-semilattice: each part is a union of sets, a min/max of times, or a last-writer-wins
register ranked by ``Stamp``. ``pipeline.merge`` joins an event (or a derived message) into it, so the same
contributions in any order, with any duplicates, give the same value. Lists are kept sorted by identity
and registers store the stamp that won them, so two equal states are equal field by field and serialise
to the same bytes (``state_fingerprint``).

The order of changes (design rule "order comes from the event, not from arrival"):

1. ``event_time`` (UTC);
2. a status rank, so that at the same instant the further-along status wins:
   storage ``active < eol < deleted``; deployment ``deployed < decommissioned``; alert
   ``open < dismissed < fixed``; build ``(none) < requested < queued/waiting/pending < in_progress <
   completed`` (GitHub's ``updated_at`` has one-second resolution and ties, see source-payloads.md);
3. ``event_id``, a stable tie-breaker (a redelivery carries the same id, so it ranks equal to itself).

When two contributions rank equal (only a redelivery can), the larger canonical JSON value wins, so even a
source that breaks the "same id, same content" contract cannot make the result depend on arrival order.
(``version`` counts distinct ids, so such a source can still change a state without moving its version;
links are timeless for that reason: scanners re-send them with the same id at every scan.)

Decisions the merge applies:

- A register (any scalar field) holds the value of the highest-ranked event that had one: fields are
  filled from whichever event has them, and on conflict the later event wins.
- Storage: a location is (registry_url without trailing '/', repository, path or ''). An event with
  ``previous_repository``/``previous_path`` retires the location it names (status deleted at the event's
  time), unless its action is ``copied``: a copy leaves its source in place. Tags are observations: every
  time a tag was seen is kept.
- Runtime risks: each asserter's latest assertion replaces its earlier one whole; an empty list with a
  named asserter clears it, risks without an asserter are asserted by the event's source, and an event
  with neither says nothing about risks.
- Deployments keep every own change in the slot. Whether another digest took the slot, or a slot-keyed
  decommission ended it, is the slot key's verdict (``SlotEnd``), applied by ``pipeline.derive``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from linked_artifacts.errors import LinkedArtifactsError

KeyRole = Literal["digest", "repository", "slot", "run", "other"]
DerivedKind = Literal[
    "linked-context", "repo-alerts", "slot-holder", "run-build", "repo-member", "slot-member", "run-member"
]
EndReason = Literal["decommissioned", "superseded", "slot-decommissioned"]

# Status ranks: at the same event time, the higher rank is the later state. Terminal states rank highest
# so that a tie never resurrects something a source has just retired.
STORAGE_RANK: dict[str, int] = {"active": 0, "eol": 1, "deleted": 2}
DEPLOYMENT_RANK: dict[str, int] = {"deployed": 0, "decommissioned": 1}
ALERT_RANK: dict[str, int] = {"open": 0, "dismissed": 1, "fixed": 2}
# GitHub workflow_run statuses in the order a run moves through them; unknown or absent (provenance) is 0.
BUILD_RANK: dict[str, int] = {
    "requested": 1,
    "queued": 2,
    "waiting": 2,
    "pending": 2,
    "in_progress": 3,
    "completed": 4,
}


class MergeError(LinkedArtifactsError):
    """An input the merge cannot apply: it names another key, or its body does not match its kind."""

    code = "merge_rejected"
    dead_letter = True


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


F = TypeVar("F", bound=_Frozen)
_new = object.__new__
_set = object.__setattr__


class _Fields:
    """What ``trusted`` needs of a model class, computed once."""

    def __init__(self, cls: type[BaseModel]) -> None:
        self.names = frozenset(cls.model_fields)
        # One set for every instance: pydantic copies it before changing it (model_copy), and a frozen model
        # never adds to it. It names every field, as validation with every field given would.
        self.fields_set = set(cls.model_fields)
        self.required = frozenset(name for name, info in cls.model_fields.items() if info.is_required())
        self.defaults = tuple(
            (name, info.default, info.default_factory)
            for name, info in cls.model_fields.items()
            if not info.is_required()
        )


_fields: dict[type[BaseModel], _Fields] = {}


def trusted(cls: type[F], **values: Any) -> F:
    """``cls(**values)`` for values that are valid already: parts of validated events and states, put
    together by the merge. Events are validated once, when decoded; validating what the merge builds from
    them again cost ~4.7 us a record (and ``model_construct``, which fills each field in Python, ~6.7), and
    the merge builds about five models per event. This sets the instance up as ``model_construct`` does,
    ~1 us (measured). A field left out takes its default, as in ``cls(...)``. The fields keep the order
    given, which pydantic's JSON follows; equality, the Avro encoding and ``canonical_json`` do not."""
    fields = _fields.get(cls)
    if fields is None:
        fields = _fields[cls] = _Fields(cls)
    if values.keys() != fields.names:
        if not values.keys() <= fields.names:
            raise TypeError(f"{cls.__name__} has no field {sorted(values.keys() - fields.names)}")
        if not fields.required <= values.keys():
            raise TypeError(f"{cls.__name__}: no value for {sorted(fields.required - values.keys())}")
        for name, default, factory in fields.defaults:
            if name not in values:
                values[name] = factory() if factory is not None else default  # type: ignore[call-arg]
    instance = _new(cls)
    _set(instance, "__dict__", values)
    _set(instance, "__pydantic_fields_set__", fields.fields_set)
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def utc(value: datetime) -> datetime:
    """Event times are UTC; a naive time is taken as UTC so that naive and aware times still compare."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def canonical_json(value: Any) -> str:
    """Stable text of a model or JSON-able value: the last-resort tie-breaker and the fingerprint input."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class Stamp(_Frozen):
    """The rank of one contribution: event time, then status rank, then event id."""

    at: datetime = Field(description="Event time of the contribution (UTC).")
    rank: int = Field(description="Status rank at that time (see pipeline.state ranks).")
    event_id: str = Field(description="Id of the event that contributed.")

    @property
    def order(self) -> tuple[datetime, int, str]:
        return (self.at, self.rank, self.event_id)


class StampedFields(_Frozen):
    """The register fields one contribution won. Grouped by stamp: one event usually wins them all, and a
    stamp per field made the stamps most of a state's bytes (changelog, enriched topic, derived messages)."""

    stamp: Stamp = Field(description="Rank of the contribution.")
    fields: list[str] = Field(description="Register fields whose value it gave (sorted).")


class Record(_Frozen):
    """Base of every record: last-writer-wins registers plus the sources that contributed."""

    # Field names that are last-writer-wins registers; each non-empty one has its winning stamp in
    # `register_stamps`.
    LWW_FIELDS: ClassVar[tuple[str, ...]] = ()

    sources: list[str] = Field(default_factory=list, description="Sources that contributed (sorted).")
    register_stamps: list[StampedFields] = Field(
        default_factory=list,
        description="Which contribution won each register field, grouped by stamp (sorted by stamp order).",
    )

    @model_validator(mode="before")
    @classmethod
    def _stamps_per_field(cls, data: Any) -> Any:
        # States written before the grouping kept one stamp per field under `stamps`; read them as groups.
        if isinstance(data, dict) and isinstance(data.get("stamps"), dict):
            data = dict(data)
            data["register_stamps"] = group_stamps(
                {name: Stamp.model_validate(stamp) for name, stamp in data.pop("stamps").items()}
            )
        return data

    def field_stamps(self) -> dict[str, Stamp]:
        """Register field -> the stamp that won it."""
        return {name: group.stamp for group in self.register_stamps for name in group.fields}


def one_group(fields: Iterable[str], stamp: Stamp) -> list[StampedFields]:
    """``group_stamps`` of fields that one contribution all won (an event's own record)."""
    names = sorted(fields)
    return [trusted(StampedFields, stamp=stamp, fields=names)] if names else []


def group_stamps(stamps: dict[str, Stamp]) -> list[StampedFields]:
    """The canonical grouped form of field -> stamp: one group per stamp, sorted by stamp order."""
    groups: dict[tuple[datetime, int, str], tuple[Stamp, list[str]]] = {}
    for name, stamp in stamps.items():
        groups.setdefault(stamp.order, (stamp, []))[1].append(name)
    return [
        trusted(StampedFields, stamp=stamp, fields=sorted(names))
        for _, (stamp, names) in sorted(groups.items(), key=lambda item: item[0])
    ]


class TagObservation(_Frozen):
    """A tag seen on a location. A tag is an observation at a time, never an identity."""

    tag: str = Field(description="The tag as the registry reported it.")
    observed_at: list[datetime] = Field(
        default_factory=list, description="Every time it was observed (sorted)."
    )


class LocationChange(_Frozen):
    """One storage event as it touched one location."""

    action: str = Field(description="What the source reported; 'moved' on the location an artifact left.")
    status: str = Field(description="active, eol or deleted after this change.")
    stamp: Stamp = Field(description="Rank of the change.")
    source: str = Field(description="Connector that reported it.")


class StorageLocation(Record):
    """Where the artifact is stored. Identity: (registry_url without trailing '/', repository, path)."""

    LWW_FIELDS: ClassVar[tuple[str, ...]] = (
        "registry",
        "artifact_url",
        "name",
        "version",
        "size",
        "media_type",
        "github_repository",
    )

    registry_url: str = Field(description="Base URL of the registry (identity).")
    repository: str = Field(description="Repository within the registry (identity).")
    path: str = Field(default="", description="Path within the repository; empty when the source has none.")
    registry: str | None = Field(default=None, description="Registry kind.")
    artifact_url: str | None = Field(default=None, description="URL of the stored artifact.")
    name: str | None = Field(default=None, description="Artifact name.")
    version: str | None = Field(default=None, description="Artifact version.")
    size: int | None = Field(default=None, description="Size in bytes.")
    media_type: str | None = Field(default=None, description="Manifest or file media type.")
    github_repository: str | None = Field(default=None, description="Source repository owner/name.")
    status: str = Field(default="active", description="Status of the latest change by the ordering rule.")
    first_seen: datetime = Field(description="Earliest change time.")
    last_seen: datetime = Field(description="Latest change time.")
    tags: list[TagObservation] = Field(
        default_factory=list, description="Tags observed here (sorted by tag)."
    )
    history: list[LocationChange] = Field(default_factory=list, description="Every change, in ranking order.")


class BuildRecord(Record):
    """One build of the artifact: a workflow run, its provenance, or both combined.

    Identity (``build_key``), first that applies: ``gh-run:<repo>/<run id>/<attempt>`` when the repository
    and run id are known (attempt 1 when absent: GitHub numbers attempts from 1); ``invocation:<id>`` for
    other builders; ``commit:<repo>@<sha>`` for builds known only from image labels; ``event:<event id>``.
    """

    LWW_FIELDS: ClassVar[tuple[str, ...]] = (
        "repository",
        "workflow_run_id",
        "run_attempt",
        "workflow_name",
        "workflow_path",
        "status",
        "conclusion",
        "commit",
        "ref",
        "run_url",
        "builder_id",
        "build_type",
        "invocation_id",
        "predicate_type",
        "attestation_sha256",
        "subject_name",
    )

    build_key: str = Field(description="Identity of the build (see the record's doc).")
    repository: str | None = Field(default=None, description="Source repository owner/name.")
    workflow_run_id: int | None = Field(default=None, description="GitHub Actions run id.")
    run_attempt: int | None = Field(default=None, description="Run attempt.")
    workflow_name: str | None = Field(default=None, description="Workflow name.")
    workflow_path: str | None = Field(default=None, description="Workflow file path.")
    status: str | None = Field(default=None, description="Run status.")
    conclusion: str | None = Field(default=None, description="Run conclusion.")
    commit: str | None = Field(default=None, description="Commit SHA built.")
    ref: str | None = Field(default=None, description="Git ref built.")
    run_url: str | None = Field(default=None, description="Link to the run.")
    builder_id: str | None = Field(default=None, description="SLSA builder id.")
    build_type: str | None = Field(default=None, description="SLSA build type.")
    invocation_id: str | None = Field(default=None, description="SLSA invocation id.")
    predicate_type: str | None = Field(default=None, description="in-toto predicate type.")
    attestation_sha256: str | None = Field(default=None, description="sha256 of the attestation bytes.")
    subject_name: str | None = Field(default=None, description="in-toto subject name.")
    first_seen: datetime = Field(description="Earliest contribution time.")
    last_seen: datetime = Field(description="Latest contribution time.")


class StatusChange(_Frozen):
    """One deployment event for one slot."""

    status: str = Field(description="deployed or decommissioned.")
    stamp: Stamp = Field(description="Rank of the change.")
    source: str = Field(description="Connector that reported it.")


class RiskAssertion(_Frozen):
    """The latest runtime risks one asserter gave for a deployment; a newer assertion replaces it whole."""

    asserted_by: str = Field(description="Who asserted, e.g. defender-for-cloud or k8s:aks-prod-weu-1.")
    risks: list[str] = Field(default_factory=list, description="Risks asserted (sorted); empty clears them.")
    stamp: Stamp = Field(description="Rank of the assertion.")


class DeploymentRecord(Record):
    """The artifact in one deployment slot (logical, physical, cluster, name), as its own events say.

    Whether another digest later took the slot is not an own fact: it comes from the slot's key as a
    ``slot-holder`` message and is applied by the view.
    """

    LWW_FIELDS: ClassVar[tuple[str, ...]] = (
        "name",
        "version",
        "namespace",
        "workload",
        "container",
        "image_ref",
        "github_repository",
        "tags",
    )

    slot: str = Field(description="slot:logical/physical/cluster/name (identity).")
    logical_environment: str = Field(description="Stage, e.g. prod.")
    physical_environment: str = Field(default="", description="Region or site.")
    cluster: str = Field(default="", description="Cluster.")
    deployment_name: str = Field(description="Deployment name, unique within a cluster.")
    status: str = Field(
        default="deployed", description="Status of the latest own change by the ordering rule."
    )
    first_seen: datetime = Field(description="Earliest change time.")
    last_seen: datetime = Field(description="Latest change time.")
    history: list[StatusChange] = Field(
        default_factory=list, description="Every own change, in ranking order."
    )
    risk_assertions: list[RiskAssertion] = Field(
        default_factory=list, description="Latest assertion of each asserter (sorted by asserter)."
    )
    name: str | None = Field(default=None, description="Artifact name.")
    version: str | None = Field(default=None, description="Artifact version.")
    namespace: str | None = Field(default=None, description="Kubernetes namespace.")
    workload: str | None = Field(default=None, description="Workload.")
    container: str | None = Field(default=None, description="Container name.")
    image_ref: str | None = Field(default=None, description="Image reference as the runtime saw it.")
    github_repository: str | None = Field(default=None, description="Source repository owner/name.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free key/value tags of the latest event.")


class AlertRecord(Record):
    """A vulnerability or code-scanning finding, identity ``alert_key``; every field is the latest known."""

    LWW_FIELDS: ClassVar[tuple[str, ...]] = (
        "scope",
        "repository",
        "vulnerability_id",
        "package_name",
        "package_version",
        "purl",
        "fixed_version",
        "severity",
        "cvss_score",
        "cvss_vector",
        "epss",
        "epss_percentile",
        "state",
        "tool",
        "title",
        "url",
    )

    alert_key: str = Field(description="Identity of the finding.")
    scope: str = Field(description="digest or repository.")
    repository: str | None = Field(default=None, description="Repository owner/name for repository alerts.")
    vulnerability_id: str = Field(description="CVE, GHSA or rule id.")
    aliases: list[str] = Field(default_factory=list, description="Every alias ever reported (sorted).")
    package_name: str | None = Field(default=None, description="Affected package.")
    package_version: str | None = Field(default=None, description="Installed version.")
    purl: str | None = Field(default=None, description="Package URL.")
    fixed_version: str | None = Field(default=None, description="First fixed version.")
    severity: str = Field(description="Normalised severity.")
    cvss_score: float | None = Field(default=None, description="CVSS base score.")
    cvss_vector: str | None = Field(default=None, description="CVSS vector.")
    epss: float | None = Field(default=None, description="EPSS probability.")
    epss_percentile: float | None = Field(default=None, description="EPSS percentile.")
    state: str = Field(description="open, dismissed or fixed.")
    tool: str = Field(description="Scanner or GitHub feature.")
    title: str | None = Field(default=None, description="Short description.")
    url: str | None = Field(default=None, description="Link to the alert or advisory.")
    first_seen: datetime = Field(description="Earliest report time.")
    last_seen: datetime = Field(description="Latest report time.")


class LinkRecord(_Frozen):
    """An image index and one of its platform manifests. Identity: (index_digest, platform_digest).

    Timeless: a manifest's platform is part of its content, and sources re-send the same link with the
    same event id at every scan, so nothing here depends on event time.
    """

    index_digest: str = Field(description="Digest of the image index.")
    platform_digest: str = Field(description="Digest of the platform manifest.")
    platform: str | None = Field(default=None, description="os/architecture[/variant].")
    sources: list[str] = Field(default_factory=list, description="Sources that reported it (sorted).")


class SlotEnd(_Frozen):
    """What a slot's key tells one member digest: what ended the member's latest deployment there.

    Along a slot's history a member's verdict only gets newer (``newer_verdict``): its latest deployed change
    only gets later, and for one latest change the first change that ends it only gets earlier (a late
    event in between) or appears. So the receiver keeps the greatest verdict it got, in any order. The
    holder fields are the slot's own view (``linked_view`` of the slot); member verdicts leave them empty,
    else every new holder would re-send every member's verdict.
    """

    slot: str = Field(description="The slot key.")
    member_latest: Stamp | None = Field(
        default=None, description="The member's latest deployed change it knew."
    )
    holder_digest: str | None = Field(default=None, description="Digest with the latest deployed change.")
    holder_since: Stamp | None = Field(default=None, description="That change.")
    slot_active: bool = Field(default=False, description="False when the holder was decommissioned since.")
    end: Stamp | None = Field(
        default=None,
        description="First change after member_latest that ended it: another digest or the slot.",
    )
    end_reason: EndReason | None = Field(default=None, description="superseded or slot-decommissioned.")
    ended_by: str | None = Field(default=None, description="Digest that took the slot, when superseded.")


def newer_verdict(a: SlotEnd | None, b: SlotEnd | None) -> SlotEnd | None:
    """The newer of two verdicts for one member of one slot (see ``SlotEnd``): the later latest deployed
    change; for the same one, an end over none, and the earlier end. Equal rank means an equal payload."""
    if a is None or b is None:
        return a if b is None else b
    latest_a = a.member_latest.order if a.member_latest is not None else None
    latest_b = b.member_latest.order if b.member_latest is not None else None
    if latest_a != latest_b:
        if latest_a is None or latest_b is None:
            return a if latest_b is None else b
        return a if latest_a > latest_b else b
    if a.end is None or b.end is None:
        return a if b.end is None else b
    return a if a.end.order <= b.end.order else b


class Derived(_Frozen):
    """A fact one key sends another (the processor is partitioned by key). See ``pipeline.derive``.

    The receiver keeps one snapshot per (origin_key, kind), replaced only by a newer one: a higher
    origin_version, or for slot verdicts a newer one (``newer_verdict``).
    """

    target_key: str = Field(description="Key whose state receives it.")
    origin_key: str = Field(description="Key whose state sent it.")
    origin_version: int = Field(description="Monotonic in the origin's state; counts the payload's inputs.")
    kind: DerivedKind = Field(description="What the payload means (pipeline.derive lists the protocol).")
    link: LinkRecord | None = Field(default=None, description="linked-context: the link between the two.")
    deployments: list[DeploymentRecord] = Field(
        default_factory=list, description="linked-context from an index: its own deployments."
    )
    slot_ends: list[SlotEnd] = Field(
        default_factory=list, description="linked-context from an index: what its slots say about it."
    )
    alerts: list[AlertRecord] = Field(
        default_factory=list, description="linked-context from a platform, or repo-alerts: alerts."
    )
    builds: list[BuildRecord] = Field(default_factory=list, description="run-build: the run's builds.")
    history: list[StatusChange] = Field(
        default_factory=list, description="slot-member: the member's own changes in the slot."
    )
    slot_end: SlotEnd | None = Field(
        default=None, description="slot-holder: the slot's verdict for the target."
    )


class LinkedArtifactState(_Frozen):
    """Everything known about one key, canonical: sorted lists, so equal states are equal values."""

    key: str = Field(description="Kafka key: digest, repo:..., slot:... or run:....")
    version: int = Field(
        default=0,
        description="Events merged plus the origin versions of inherited snapshots; grows with each change.",
    )
    event_ids: list[str] = Field(default_factory=list, description="Ids of every event merged (sorted).")
    storage: list[StorageLocation] = Field(default_factory=list, description="Storage locations.")
    builds: list[BuildRecord] = Field(default_factory=list, description="Builds (own events).")
    deployments: list[DeploymentRecord] = Field(default_factory=list, description="Deployments (own events).")
    alerts: list[AlertRecord] = Field(default_factory=list, description="Alerts (own events).")
    links: list[LinkRecord] = Field(default_factory=list, description="Index/platform links (own events).")
    inherited: list[Derived] = Field(
        default_factory=list, description="Latest snapshot from each (origin_key, kind), sorted."
    )


def empty_state(key: str) -> LinkedArtifactState:
    """The state of a key nothing has reached yet."""
    return LinkedArtifactState(key=key)


def key_role(key: str) -> KeyRole:
    if key.startswith("sha256:"):
        return "digest"
    if key.startswith("repo:"):
        return "repository"
    if key.startswith("slot:"):
        return "slot"
    if key.startswith("run:"):
        return "run"
    return "other"


def state_fingerprint(state: LinkedArtifactState) -> str:
    """sha256 of the canonical JSON of the state: equal states, equal fingerprints."""
    return "sha256:" + hashlib.sha256(canonical_json(state).encode()).hexdigest()


def changed(before: LinkedArtifactState, after: LinkedArtifactState) -> bool:
    """True when the processor must publish ``after``. The state is canonical, so value equality is exact."""
    return before != after
