"""Canonical events: what every connector emits and every processor consumes.

One envelope, ``ArtifactEvent``, keyed on Kafka by its ``key`` (the normalised digest, or ``repo:owner/name``
for repository-level alerts). Exactly one of the optional bodies is set, matching ``kind``.

These pydantic models are the source of truth; ``schemas/artifact_event.avsc`` is generated from them by
``linked_artifacts.avro_schema`` and a unit test fails if the two drift apart. Enumerations are Avro strings
validated here, so adding a value later stays backward compatible for every reader.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventKind = Literal["storage", "build", "deployment", "link", "alert"]
Source = Literal[
    "github",
    "artifactory",
    "metadata-api",
    "attestation",
    "cloudevents",
    "kubernetes",
    "trivy",
    "grype",
    "dependabot",
    "code-scanning",
    "demo",
]
StorageStatus = Literal["active", "eol", "deleted"]
StorageAction = Literal[
    "deployed",
    "deleted",
    "moved",
    "copied",
    "pushed",
    "promoted",
    "published",
    "updated",
    "record",
    "observed",
]
DeploymentStatus = Literal["deployed", "decommissioned"]
RuntimeRisk = Literal["critical-resource", "internet-exposed", "lateral-movement", "sensitive-data"]
Severity = Literal["critical", "high", "medium", "low", "negligible", "unknown"]
AlertState = Literal["open", "fixed", "dismissed"]
AlertScope = Literal["digest", "repository"]

RUNTIME_RISKS: tuple[RuntimeRisk, ...] = (
    "critical-resource",
    "internet-exposed",
    "lateral-movement",
    "sensitive-data",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StorageBody(_Frozen):
    """Where an artifact is stored. A location is (registry_url, repository, path)."""

    registry: str = Field(
        description="Registry kind, e.g. jfrog-artifactory, ghcr, github-packages, docker-hub."
    )
    registry_url: str = Field(
        description="Base URL of the registry, e.g. https://acme.jfrog.io/artifactory/."
    )
    repository: str = Field(description="Repository within the registry (not the GitHub repository).")
    path: str | None = Field(default=None, description="Path of the artifact within the repository.")
    artifact_url: str | None = Field(default=None, description="URL of the stored artifact.")
    name: str | None = Field(default=None, description="Artifact name, e.g. acme/payments-api.")
    version: str | None = Field(default=None, description="Artifact version, when the source gives one.")
    tags: list[str] = Field(default_factory=list, description="Tags observed with this event (observations).")
    status: StorageStatus = Field(default="active", description="active, eol or deleted.")
    action: StorageAction = Field(description="What the source reported happening.")
    size: int | None = Field(default=None, description="Size in bytes.")
    media_type: str | None = Field(default=None, description="Manifest or file media type.")
    github_repository: str | None = Field(default=None, description="Source repository owner/name, if known.")
    previous_repository: str | None = Field(
        default=None, description="For moves and promotions: the repository the artifact left."
    )
    previous_path: str | None = Field(default=None, description="For moves and promotions: the path it left.")


class BuildBody(_Frozen):
    """How an artifact was built: a CI run and, when present, its provenance attestation."""

    repository: str | None = Field(default=None, description="Source repository owner/name.")
    workflow_run_id: int | None = Field(default=None, description="GitHub Actions run id.")
    run_attempt: int | None = Field(default=None, description="Run attempt number.")
    workflow_name: str | None = Field(default=None, description="Workflow name.")
    workflow_path: str | None = Field(default=None, description="Workflow file path.")
    status: str | None = Field(default=None, description="Run status: requested, in_progress, completed, ...")
    conclusion: str | None = Field(default=None, description="Run conclusion: success, failure, ...")
    commit: str | None = Field(default=None, description="Git commit SHA built.")
    ref: str | None = Field(default=None, description="Git ref built.")
    run_url: str | None = Field(default=None, description="Link to the run.")
    builder_id: str | None = Field(default=None, description="SLSA runDetails.builder.id.")
    build_type: str | None = Field(default=None, description="SLSA buildDefinition.buildType.")
    invocation_id: str | None = Field(default=None, description="SLSA runDetails.metadata.invocationId.")
    predicate_type: str | None = Field(default=None, description="in-toto predicateType.")
    attestation_sha256: str | None = Field(
        default=None, description="sha256 of the original attestation bytes, kept on the attestations topic."
    )
    subject_name: str | None = Field(default=None, description="in-toto subject name.")


class DeploymentBody(_Frozen):
    """A deployment slot, keyed like GitHub's: (logical, physical, cluster, deployment_name)."""

    logical_environment: str = Field(description="Stage, e.g. prod.")
    physical_environment: str = Field(default="", description="Region or site; empty when not given.")
    cluster: str = Field(default="", description="Cluster; empty when not given.")
    deployment_name: str = Field(description="Unique within a cluster.")
    status: DeploymentStatus = Field(description="deployed or decommissioned.")
    runtime_risks: list[RuntimeRisk] = Field(default_factory=list, description="Runtime risks asserted.")
    risks_asserted_by: str | None = Field(
        default=None, description="Who asserted the risks, e.g. defender-for-cloud, k8s:aks-prod-weu-1."
    )
    name: str | None = Field(default=None, description="Artifact name.")
    version: str | None = Field(default=None, description="Artifact version.")
    namespace: str | None = Field(default=None, description="Kubernetes namespace.")
    workload: str | None = Field(default=None, description="Workload, e.g. Deployment/payments-api.")
    container: str | None = Field(default=None, description="Container name.")
    image_ref: str | None = Field(default=None, description="Image reference as the runtime saw it.")
    tags: dict[str, str] = Field(default_factory=dict, description="Free key/value tags.")
    github_repository: str | None = Field(default=None, description="Source repository owner/name, if known.")


class LinkBody(_Frozen):
    """An image index and one of its platform manifests."""

    index_digest: str = Field(description="Digest of the image index / manifest list.")
    platform_digest: str = Field(description="Digest of the platform manifest.")
    platform: str | None = Field(default=None, description="os/architecture[/variant], e.g. linux/arm64.")


class AlertBody(_Frozen):
    """A vulnerability or code-scanning finding on a digest, or on a repository."""

    alert_key: str = Field(description="Stable identity of the finding (same finding, same key).")
    scope: AlertScope = Field(description="digest: on the artifact; repository: applies via its source repo.")
    repository: str | None = Field(default=None, description="Repository owner/name for repository alerts.")
    vulnerability_id: str = Field(description="CVE, GHSA or rule id.")
    aliases: list[str] = Field(default_factory=list, description="Other ids of the same vulnerability.")
    package_name: str | None = Field(default=None, description="Affected package.")
    package_version: str | None = Field(default=None, description="Installed version, when known.")
    purl: str | None = Field(default=None, description="Package URL.")
    fixed_version: str | None = Field(default=None, description="First fixed version, when known.")
    severity: Severity = Field(description="Normalised severity.")
    cvss_score: float | None = Field(default=None, description="Highest CVSS base score given.")
    cvss_vector: str | None = Field(default=None, description="Vector of that score.")
    epss: float | None = Field(default=None, description="EPSS probability 0..1.")
    epss_percentile: float | None = Field(default=None, description="EPSS percentile 0..1.")
    state: AlertState = Field(description="open, fixed or dismissed.")
    tool: str = Field(description="Scanner or GitHub feature that raised it.")
    title: str | None = Field(default=None, description="Short description.")
    url: str | None = Field(default=None, description="Link to the alert or advisory.")


class ArtifactEvent(_Frozen):
    """The envelope of every canonical event."""

    event_id: str = Field(description="Source-derived id: a redelivery of the same input has the same id.")
    key: str = Field(description="Kafka key: the subject digest, or repo:owner/name for repository alerts.")
    kind: EventKind = Field(description="Which body is set.")
    source: Source = Field(description="Which connector made it.")
    digest: str | None = Field(default=None, description="Subject digest, sha256:<64 hex>.")
    event_time: datetime = Field(description="When it happened, as the source says (UTC).")
    ingest_time: datetime = Field(description="When the connector accepted it (UTC).")
    delivery_id: str = Field(description="Id of the delivery (request) that carried it.")
    storage: StorageBody | None = Field(default=None, description="Set when kind = storage.")
    build: BuildBody | None = Field(default=None, description="Set when kind = build.")
    deployment: DeploymentBody | None = Field(default=None, description="Set when kind = deployment.")
    link: LinkBody | None = Field(default=None, description="Set when kind = link.")
    alert: AlertBody | None = Field(default=None, description="Set when kind = alert.")


class DeadLetter(_Frozen):
    """Input we could not accept: kept with its reason so `linked-artifacts replay` can resend it."""

    dead_letter_id: str = Field(description="sha256 of the raw body and the endpoint.")
    stage: str = Field(description="connectors or worker: where it was refused.")
    endpoint: str = Field(description="HTTP path, or the topic it was consumed from.")
    reason: str = Field(description="Why it was refused, naming the field.")
    error_code: str = Field(description="Stable error code, e.g. invalid_json, unsupported_event.")
    content_type: str | None = Field(default=None, description="Content-Type of the request.")
    headers: dict[str, str] = Field(default_factory=dict, description="Request headers needed for a replay.")
    body: bytes = Field(description="The raw body, byte for byte.")
    received_at: datetime = Field(description="When it arrived (UTC).")


def slot_key(logical_environment: str, physical_environment: str, cluster: str, deployment_name: str) -> str:
    """Kafka key of a deployment slot, for events that name a slot but no digest (a workload deleted)."""
    return "slot:" + "/".join((logical_environment, physical_environment, cluster, deployment_name))


def repo_key(repository: str) -> str:
    """Kafka key of repository-level facts (Dependabot and code-scanning alerts)."""
    return "repo:" + repository.lower()


def run_key(repository: str, run_id: int) -> str:
    """Kafka key of a workflow run (workflow_run webhooks name no digest). Lower-cased like ``repo_key``:
    GitHub owner and repository names ignore case."""
    return f"run:{repository.lower()}/{run_id}"
