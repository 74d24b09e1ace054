"""A realistic life of one multi-arch image, as HTTP requests to the running connectors.

Used by the end-to-end test and the fault tests: a multi-arch push to Artifactory (index + 2 platforms),
GHCR's per-manifest package events, SLSA provenance, the workflow run, deployments in two clusters with
runtime risks, a Grype scan of one platform digest, a decommission, and out-of-order and duplicate
deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

INDEX = "sha256:" + hashlib.sha256(b"e2e-index").hexdigest()
AMD64 = "sha256:" + hashlib.sha256(b"e2e-amd64").hexdigest()
ARM64 = "sha256:" + hashlib.sha256(b"e2e-arm64").hexdigest()
REPO = "acme/payments-api"
RUN_ID = 77001234
COMMIT = "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"
CVE = "CVE-2026-31337"


@dataclass(frozen=True)
class Request:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def story(tokens: dict[str, str], *, tag: str = "") -> list[Request]:
    """Every request of the story, in a deliberately awkward order. ``tag`` varies delivery ids so the same
    story can be told twice with distinct deliveries (for the fault tests)."""
    gh_secret = tokens["github_webhook_secret"].encode()
    jfrog_secret = tokens["artifactory_secret"].encode()

    def github(event: str, delivery: str, payload: dict[str, Any]) -> Request:
        body = _json(payload)
        sig = "sha256=" + hmac.new(gh_secret, body, hashlib.sha256).hexdigest()
        return Request(
            f"github {event} {delivery}",
            "/webhooks/github",
            body,
            {
                "Content-Type": "application/json",
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": delivery + tag,
                "X-Hub-Signature-256": sig,
            },
        )

    def jfrog(payload: dict[str, Any]) -> Request:
        body = _json(payload)
        return Request(
            f"artifactory {payload['event_type']}",
            "/webhooks/artifactory",
            body,
            {
                "Content-Type": "application/json",
                "X-JFrog-Event-Auth": hmac.new(jfrog_secret, body, hashlib.sha256).hexdigest(),
            },
        )

    def bearer(
        name: str, path: str, payload: Any, token: str, content_type: str = "application/json"
    ) -> Request:
        return Request(
            name,
            path,
            _json(payload),
            {"Content-Type": content_type, "Authorization": f"Bearer {tokens[token]}"},
        )

    def cloudevent(event_id: str, kind: str, time: str, data: dict[str, Any]) -> Request:
        return bearer(
            f"cloudevent {kind} {event_id}",
            "/events/cloudevents",
            {
                "specversion": "1.0",
                "id": event_id + tag,
                "source": "//defender.example/subscriptions/1",
                "type": f"dev.linkedartifacts.{kind}.v1",
                "time": time,
                "data": data,
            },
            "cloudevents_token",
            "application/cloudevents+json",
        )

    push = jfrog(
        {
            "domain": "docker",
            "event_type": "pushed",
            "jpd_origin": "https://acme.jfrog.io",
            "id": None,
            "data": {
                "repo_key": "docker-prod-local",
                "event_type": "pushed",
                "path": "acme/payments-api/1.42.0/list.manifest.json",
                "name": "list.manifest.json",
                "sha256": INDEX.removeprefix("sha256:"),
                "size": 1206,
                "image_name": "acme/payments-api",
                "tag": "1.42.0" + tag,
                "platforms": [
                    {"architecture": "amd64", "os": "linux", "digest": AMD64},
                    {"architecture": "arm64", "os": "linux", "digest": ARM64},
                ],
            },
        }
    )

    def ghcr(digest: str, delivery: str, tag_name: str) -> Request:
        return github(
            "registry_package",
            delivery,
            {
                "action": "published",
                "registry_package": {
                    "id": 10696,
                    "name": "payments-api",
                    "namespace": "acme",
                    "ecosystem": "CONTAINER",
                    "package_type": "CONTAINER",
                    "package_version": {
                        "id": 57755791,
                        "version": digest,
                        "name": digest,
                        "package_url": f"ghcr.io/acme/payments-api:{tag_name}",
                        "updated_at": "2026-05-05T10:20:00Z",
                        "container_metadata": {
                            "tag": {"name": tag_name, "digest": digest},
                            "labels": {
                                "all_labels": {
                                    "org.opencontainers.image.source": f"https://github.com/{REPO}",
                                    "org.opencontainers.image.revision": COMMIT,
                                }
                            },
                            "manifest": {
                                "digest": digest,
                                "media_type": "application/vnd.oci.image.manifest.v1+json",
                                "size": 1782,
                            },
                        },
                    },
                    "registry": {
                        "name": "GitHub CONTAINER registry",
                        "type": "CONTAINER",
                        "url": "https://ghcr.io/acme",
                        "vendor": "GitHub Inc",
                    },
                },
                "repository": {"full_name": REPO},
                "organization": {"login": "acme"},
                "sender": {"login": "ci-bot"},
            },
        )

    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {"name": "ghcr.io/acme/payments-api", "digest": {"sha256": INDEX.removeprefix("sha256:")}}
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {
                        "ref": "refs/heads/main",
                        "repository": f"https://github.com/{REPO}",
                        "path": ".github/workflows/release.yml",
                    }
                },
                "resolvedDependencies": [
                    {"uri": f"git+https://github.com/{REPO}@refs/heads/main", "digest": {"gitCommit": COMMIT}}
                ],
            },
            "runDetails": {
                "builder": {"id": f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main"},
                "metadata": {"invocationId": f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1"},
            },
        },
    }
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"tlogEntries": [{"integratedTime": "1778000000"}]},
        "dsseEnvelope": {
            "payload": base64.b64encode(_json(statement)).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "MEQC", "keyid": ""}],
        },
    }

    def run(action: str, status: str, conclusion: str | None, updated: str) -> Request:
        return github(
            "workflow_run",
            f"run-{action}",
            {
                "action": action,
                "workflow_run": {
                    "id": RUN_ID,
                    "name": "release",
                    "head_branch": "main",
                    "head_sha": COMMIT,
                    "path": ".github/workflows/release.yml",
                    "run_number": 812,
                    "run_attempt": 1,
                    "event": "push",
                    "status": status,
                    "conclusion": conclusion,
                    "workflow_id": 4242,
                    "run_started_at": "2026-05-05T10:11:12Z",
                    "created_at": "2026-05-05T10:11:00Z",
                    "updated_at": updated,
                    "html_url": f"https://github.com/{REPO}/actions/runs/{RUN_ID}",
                },
                "repository": {"full_name": REPO},
                "organization": {"login": "acme"},
            },
        )

    aks = {
        "logical_environment": "prod",
        "physical_environment": "westeurope",
        "cluster": "aks-prod-weu-1",
        "deployment_name": "payments-payments-api-app",
    }
    gke = {
        "logical_environment": "prod",
        "physical_environment": "us-east1",
        "cluster": "gke-prod-use-1",
        "deployment_name": "payments-payments-api-app",
    }
    grype = {
        "matches": [
            {
                "vulnerability": {
                    "id": CVE,
                    "dataSource": f"https://nvd.nist.gov/vuln/detail/{CVE}",
                    "namespace": "debian:distro:debian:12",
                    "severity": "Critical",
                    "urls": [],
                    "cvss": [
                        {
                            "source": "nvd@nist.gov",
                            "type": "Primary",
                            "version": "3.1",
                            "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                            "metrics": {"baseScore": 9.8},
                            "vendorMetadata": {},
                        }
                    ],
                    "epss": [{"cve": CVE, "epss": 0.91, "percentile": 0.99, "date": "2026-05-01"}],
                    "fix": {"versions": ["3.0.16"], "state": "fixed"},
                },
                "relatedVulnerabilities": [],
                "matchDetails": [],
                "artifact": {
                    "id": "a1",
                    "name": "libssl3",
                    "version": "3.0.11",
                    "type": "deb",
                    "locations": [{"path": "/var/lib/dpkg/status"}],
                    "purl": "pkg:deb/debian/libssl3@3.0.11",
                },
            }
        ],
        "source": {
            "type": "image",
            "target": {
                "userInput": "ghcr.io/acme/payments-api:1.42.0",
                "imageID": "sha256:" + "c" * 64,
                "manifestDigest": ARM64,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repoDigests": [f"ghcr.io/acme/payments-api@{INDEX}"],
                "architecture": "arm64",
                "os": "linux",
            },
        },
        "descriptor": {"name": "grype", "version": "0.116.0", "timestamp": "2026-05-05T11:00:00Z"},
    }
    org = "/orgs/acme/artifacts/metadata"
    return [
        # A deployment and a scan arrive before anything knows the digests: kept, linked later.
        bearer(
            "deployment-record aks",
            f"{org}/deployment-record",
            {
                "name": "acme/payments-api",
                "digest": INDEX,
                "version": "1.42.0",
                "status": "deployed",
                **aks,
                "runtime_risks": ["internet-exposed", "sensitive-data"],
                "github_repository": "payments-api",
            },
            "metadata_write_token",
        ),
        bearer("grype arm64", "/events/scans", grype, "scans_token"),
        push,
        ghcr(AMD64, "ghcr-amd64", ""),
        ghcr(ARM64, "ghcr-arm64", ""),
        ghcr(INDEX, "ghcr-index", "1.42.0"),
        ghcr(INDEX, "ghcr-index", "1.42.0"),  # GitHub redelivery: same X-GitHub-Delivery
        run("completed", "completed", "success", "2026-05-05T10:19:44Z"),
        run("in_progress", "in_progress", None, "2026-05-05T10:12:00Z"),  # older, arrives late
        bearer("provenance", "/events/attestations", bundle, "attestations_token"),
        cloudevent(
            "gke-deploy",
            "deployment",
            "2026-05-05T10:30:00Z",
            {
                "digest": INDEX,
                **gke,
                "runtime_risks": ["lateral-movement"],
                "image_ref": f"ghcr.io/acme/payments-api@{INDEX}",
            },
        ),
        # Received after the deployment record, so later by event time: the aks slot ends here.
        bearer(
            "decommission aks",
            f"{org}/deployment-record",
            {
                "name": "acme/payments-api",
                "digest": INDEX,
                "version": "1.42.0",
                "status": "decommissioned",
                **aks,
            },
            "metadata_write_token",
        ),
        # Older than the decommission, delivered after it: must not bring the aks slot back.
        cloudevent(
            "aks-late-deploy",
            "deployment",
            "2026-05-05T09:00:00Z",
            {"digest": INDEX, **aks, "runtime_risks": ["critical-resource"]},
        ),
        bearer("grype arm64 again", "/events/scans", grype, "scans_token"),  # duplicate report
    ]


def post_all(client: httpx.Client, requests: list[Request]) -> list[tuple[str, int, Any]]:
    answers = []
    for req in requests:
        response = client.post(req.path, content=req.body, headers=req.headers)
        answers.append((req.name, response.status_code, response.json() if response.content else None))
    return answers


def new_tag() -> str:
    return "-" + uuid.uuid4().hex[:6]
