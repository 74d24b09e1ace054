"""The ingestion endpoints: path, how each authenticates, what it accepts, which parser reads it.

One table used by the HTTP app and by the dead-letter replay, so a replay adds exactly the credential
the endpoint checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

AuthKind = Literal["github", "artifactory", "bearer", "scans"]

JSON_TYPES = ("application/json", "application/*+json")
CLOUDEVENTS_TYPES = (
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/json",
)
# GitHub signatures are accepted on /events/scans only for these events.
GITHUB_SCAN_EVENTS = frozenset({"dependabot_alert", "code_scanning_alert"})


@dataclass(frozen=True)
class EndpointSpec:
    name: str  # parser key and metrics label
    path: str  # route template
    auth: AuthKind
    parser: str  # "module:function"
    summary: str
    scope: str | None = None  # bearer scope (auth "bearer"; "scans" uses "scans")
    content_types: tuple[str, ...] = JSON_TYPES

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", self.path) + "$")


_META = "/orgs/{org}/artifacts/metadata"

ENDPOINTS: tuple[EndpointSpec, ...] = (
    EndpointSpec(
        "github",
        "/webhooks/github",
        "github",
        "connectors.sources.github:parse_github",
        "GitHub webhook (registry_package, package, workflow_run, ping), signed with X-Hub-Signature-256",
    ),
    EndpointSpec(
        "artifactory",
        "/webhooks/artifactory",
        "artifactory",
        "connectors.sources.artifactory:parse_artifactory",
        "JFrog Artifactory webhook (artifact and docker domains), authenticated by X-JFrog-Event-Auth",
    ),
    EndpointSpec(
        "storage-record",
        f"{_META}/storage-record",
        "bearer",
        "connectors.sources.metadata_api:parse_storage_record",
        "Create an artifact storage record (GitHub artifact metadata API)",
        scope="metadata:write",
    ),
    EndpointSpec(
        "deployment-record",
        f"{_META}/deployment-record",
        "bearer",
        "connectors.sources.metadata_api:parse_deployment_record",
        "Create or update a deployment record (GitHub artifact metadata API)",
        scope="metadata:write",
    ),
    EndpointSpec(
        "cluster-deployment-records",
        f"{_META}/deployment-record/cluster/{{cluster}}",
        "bearer",
        "connectors.sources.metadata_api:parse_cluster_deployment_records",
        "Set the deployment records of one cluster (GitHub artifact metadata API)",
        scope="metadata:write",
    ),
    EndpointSpec(
        "attestations",
        "/events/attestations",
        "bearer",
        "connectors.sources.attestations:parse_attestation",
        "An in-toto statement with SLSA provenance, or a Sigstore bundle wrapping one",
        scope="attestations",
    ),
    EndpointSpec(
        "cloudevents",
        "/events/cloudevents",
        "bearer",
        "connectors.sources.cloudevents:parse_cloudevents",
        "CloudEvents 1.0, structured or batch JSON (runtime monitors)",
        scope="cloudevents",
        content_types=CLOUDEVENTS_TYPES,
    ),
    EndpointSpec(
        "kubernetes",
        "/events/kubernetes",
        "bearer",
        "connectors.sources.kubernetes:parse_kubernetes",
        "Kubernetes Pod objects (status.containerStatuses[].imageID)",
        scope="kubernetes",
    ),
    EndpointSpec(
        "scans",
        "/events/scans",
        "scans",
        "connectors.sources.scans:parse_scan",
        "Scanner reports (Trivy, Grype) with a bearer token, or signed Dependabot / code scanning webhooks",
        scope="scans",
    ),
)

BY_NAME: dict[str, EndpointSpec] = {spec.name: spec for spec in ENDPOINTS}


def endpoint_for_path(path: str) -> EndpointSpec | None:
    """The endpoint a concrete request path belongs to (for replays of dead letters)."""
    for spec in ENDPOINTS:
        if spec.pattern.match(path):
            return spec
    return None


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """``"application/json; charset=UTF-8"`` -> ``("application/json", {"charset": "utf-8"})``."""
    if not content_type:
        return "", {}
    head, *rest = content_type.split(";")
    params: dict[str, str] = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    return head.strip().lower(), params


def accepts(spec: EndpointSpec, content_type: str | None) -> bool:
    mtype, params = media_type(content_type)
    if params.get("charset", "utf-8") not in ("utf-8", "utf8"):
        return False
    for allowed in spec.content_types:
        if allowed == "application/*+json":
            if mtype.startswith("application/") and mtype.endswith("+json"):
                return True
        elif mtype == allowed:
            return True
    return False


# Request body schemas for the OpenAPI document: what each source sends, loosely (parsers decide).
_DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$", "example": "sha256:" + "3d" * 32}
_TAGS = {"type": "object", "additionalProperties": {"type": "string"}}
_RISKS = {
    "type": "array",
    "items": {"enum": ["critical-resource", "internet-exposed", "lateral-movement", "sensitive-data"]},
}
_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_NAME = {"type": "string", "minLength": 1}
_OPTIONAL = {"type": ["string", "null"]}  # optional strings may be sent as null

BODY_SCHEMAS: dict[str, dict[str, Any]] = {
    "github": {
        **_OBJECT,
        "properties": {
            "action": {"type": "string"},
            "registry_package": {"type": "object"},
            "package": {"type": "object"},
            "workflow_run": {"type": "object"},
            "repository": {"type": "object"},
        },
    },
    "artifactory": {
        **_OBJECT,
        "required": ["domain", "event_type", "data"],
        "properties": {
            "domain": {"type": "string", "example": "docker"},
            "event_type": {"type": "string", "example": "pushed"},
            "jpd_origin": {"type": "string"},
            "data": {"type": "object"},
        },
    },
    "storage-record": {
        **_OBJECT,
        "required": ["name", "digest", "registry_url"],
        "properties": {
            "name": _NAME,
            "digest": _DIGEST,
            "version": _OPTIONAL,
            "artifact_url": _OPTIONAL,
            "path": _OPTIONAL,
            "registry_url": _NAME,
            "repository": _OPTIONAL,
            "status": {"enum": ["active", "eol", "deleted"]},
            "github_repository": _OPTIONAL,
        },
    },
    "deployment-record": {
        **_OBJECT,
        "required": ["name", "digest", "status", "logical_environment", "deployment_name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "digest": _DIGEST,
            "version": _OPTIONAL,
            "status": {"enum": ["deployed", "decommissioned"]},
            "logical_environment": _NAME,
            "physical_environment": _OPTIONAL,
            "cluster": _OPTIONAL,
            "deployment_name": _NAME,
            "tags": _TAGS,
            "runtime_risks": _RISKS,
            "github_repository": _OPTIONAL,
        },
    },
    "cluster-deployment-records": {
        **_OBJECT,
        "required": ["logical_environment", "deployments"],
        "properties": {
            "logical_environment": _NAME,
            "physical_environment": _OPTIONAL,
            "deployments": {
                "type": "array",
                "items": {
                    **_OBJECT,
                    "required": ["name", "digest", "deployment_name"],
                    "properties": {
                        "name": _NAME,
                        "digest": _DIGEST,
                        "version": _OPTIONAL,
                        "status": {"enum": ["deployed", "decommissioned"]},
                        "deployment_name": _NAME,
                        "tags": _TAGS,
                        "runtime_risks": _RISKS,
                        "github_repository": _OPTIONAL,
                    },
                },
            },
        },
    },
    "attestations": {
        **_OBJECT,
        "description": "An in-toto Statement v1 (`_type`, `subject`, `predicateType`, `predicate`) or a "
        "Sigstore bundle (`mediaType`, `verificationMaterial`, `dsseEnvelope`).",
    },
    "cloudevents": {
        "oneOf": [
            {
                **_OBJECT,
                "required": ["specversion", "id", "source", "type"],
                "properties": {
                    "specversion": {"const": "1.0"},
                    "id": {"type": "string"},
                    "source": {"type": "string"},
                    "type": {"type": "string"},
                    "subject": {"type": "string"},
                    "time": {"type": "string", "format": "date-time"},
                    "data": {},
                },
            },
            {"type": "array", "items": {"type": "object"}},
        ]
    },
    "kubernetes": {
        **_OBJECT,
        "description": "A Pod (`kind: Pod`) or a PodList / watch event carrying Pods.",
        "properties": {
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "status": {"type": "object"},
        },
    },
    "scans": {
        **_OBJECT,
        "description": "A Trivy or Grype JSON report for an image digest, or a dependabot_alert / "
        "code_scanning_alert webhook.",
    },
}
