"""Signed, realistic request bodies for the benchmarks, deterministic for a given seed.

Every request names digests and delivery ids of its own (derived from ``run``), so nothing a benchmark
sends is a redelivery: each accepted event is a distinct event that must reach ClickHouse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ORG = "acme"
BASE_TIME = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
ENVIRONMENTS = (("prod", "westeurope", "aks-prod-weu-1"), ("prod", "us-east1", "gke-prod-use-1"),
                ("staging", "westeurope", "aks-stg-weu-1"), ("dev", "westeurope", "aks-dev-weu-1"))
RISKS = ("critical-resource", "internet-exposed", "lateral-movement", "sensitive-data")
SEVERITIES = ("Critical", "High", "Medium", "Low", "Negligible")


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    body: bytes
    headers: dict[str, str]
    path_params: dict[str, str]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def digest(*parts: object) -> str:
    return "sha256:" + hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Signer:
    """Builds requests the way each source authenticates them."""

    def __init__(self, tokens: dict[str, str]) -> None:
        self.tokens = tokens

    def github(self, kind: str, event: str, delivery: str, payload: dict[str, Any]) -> Request:
        body = _json(payload)
        signature = hmac.new(self.tokens["github_webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
        return Request(kind, "/webhooks/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + signature}, {})

    def artifactory(self, kind: str, payload: dict[str, Any]) -> Request:
        body = _json(payload)
        auth = hmac.new(self.tokens["artifactory_secret"].encode(), body, hashlib.sha256).hexdigest()
        return Request(kind, "/webhooks/artifactory", body,
                       {"Content-Type": "application/json", "X-JFrog-Event-Auth": auth}, {})

    def bearer(self, kind: str, path: str, payload: Any, token: str, *, content_type: str = "application/json",
               path_params: dict[str, str] | None = None) -> Request:
        return Request(kind, path, _json(payload), {
            "Content-Type": content_type, "Authorization": f"Bearer {self.tokens[token]}"}, path_params or {})


# --- webhook mix (bench/webhook_ingest.py) ----------------------------------------------------------------------
def ghcr_package(signer: Signer, run: str, i: int) -> Request:
    """GitHub `registry_package` published: one storage event."""
    image = digest(run, "ghcr", i)
    app = f"svc-{i % 50}"
    tag = f"1.{i // 50}.{i % 7}"
    return signer.github("github registry_package", "registry_package", f"{run}-ghcr-{i}", {
        "action": "published",
        "registry_package": {
            "id": 10_000 + i % 50, "name": app, "namespace": ORG, "ecosystem": "CONTAINER",
            "package_type": "CONTAINER",
            "package_version": {
                "id": 50_000_000 + i, "version": image, "name": image,
                "package_url": f"ghcr.io/{ORG}/{app}:{tag}",
                "updated_at": _iso(BASE_TIME + timedelta(seconds=i)).replace(".000000", ""),
                "container_metadata": {
                    "tag": {"name": tag, "digest": image},
                    "labels": {"all_labels": {"org.opencontainers.image.source": f"https://github.com/{ORG}/{app}",
                                              "org.opencontainers.image.revision": hashlib.sha1(  # noqa: S324
                                                  f"{run}{i}".encode()).hexdigest()}},
                    "manifest": {"digest": image, "media_type": "application/vnd.oci.image.manifest.v1+json",
                                 "size": 1782}}},
            "registry": {"name": "GitHub CONTAINER registry", "type": "CONTAINER", "url": f"https://ghcr.io/{ORG}",
                         "vendor": "GitHub Inc"}},
        "repository": {"full_name": f"{ORG}/{app}"}, "organization": {"login": ORG},
        "sender": {"login": "ci-bot"}})


def artifactory_push(signer: Signer, run: str, i: int) -> Request:
    """Artifactory docker `pushed` of a two-platform index: one storage event and four link events."""
    index, amd64, arm64 = digest(run, "jf-index", i), digest(run, "jf-amd64", i), digest(run, "jf-arm64", i)
    app = f"svc-{i % 50}"
    tag = f"2.{i // 50}.{i % 5}"
    return signer.artifactory("artifactory docker pushed", {
        "domain": "docker", "event_type": "pushed", "jpd_origin": f"https://{ORG}.jfrog.io", "id": None,
        "data": {"repo_key": "docker-prod-local", "event_type": "pushed",
                 "path": f"{ORG}/{app}/{tag}/list.manifest.json", "name": "list.manifest.json",
                 "sha256": index.removeprefix("sha256:"), "size": 1206, "image_name": f"{ORG}/{app}", "tag": tag,
                 "platforms": [{"architecture": "amd64", "os": "linux", "digest": amd64},
                               {"architecture": "arm64", "os": "linux", "digest": arm64}]}})


def cloudevent_deployment(signer: Signer, run: str, i: int) -> Request:
    """A structured CloudEvent from a runtime monitor: a deployment and the image observation."""
    image = digest(run, "ce", i)
    logical, physical, cluster = ENVIRONMENTS[i % len(ENVIRONMENTS)]
    app = f"svc-{i % 50}"
    return signer.bearer("cloudevents deployment", "/events/cloudevents", {
        "specversion": "1.0", "id": f"{run}-ce-{i}", "source": "//defender.example/subscriptions/1",
        "type": "dev.linkedartifacts.deployment.v1", "time": _iso(BASE_TIME + timedelta(seconds=i)),
        "data": {"digest": image, "logical_environment": logical, "physical_environment": physical,
                 "cluster": cluster, "deployment_name": f"{app}-app", "runtime_risks": list(RISKS[: i % 3]),
                 "image_ref": f"ghcr.io/{ORG}/{app}@{image}"}},
        "cloudevents_token", content_type="application/cloudevents+json")


def metadata_deployment(signer: Signer, run: str, i: int) -> Request:
    """GitHub artifact metadata API deployment record: one deployment event."""
    image = digest(run, "meta", i)
    logical, physical, cluster = ENVIRONMENTS[i % len(ENVIRONMENTS)]
    app = f"svc-{i % 50}"
    return signer.bearer("metadata deployment-record", f"/orgs/{ORG}/artifacts/metadata/deployment-record", {
        "name": f"{ORG}/{app}", "digest": image, "version": f"3.{i}.0", "status": "deployed",
        "logical_environment": logical, "physical_environment": physical, "cluster": cluster,
        "deployment_name": f"{app}-app-{i % 9}", "runtime_risks": list(RISKS[i % 4: i % 4 + 1]),
        "github_repository": app}, "metadata_write_token", path_params={"org": ORG})


WEBHOOK_KINDS = (ghcr_package, artifactory_push, cloudevent_deployment, metadata_deployment)


def webhook_mix(signer: Signer, run: str, count: int, *, seed: int) -> list[Request]:
    """``count`` requests, a quarter of each kind, in a shuffled (seeded) order."""
    requests = [WEBHOOK_KINDS[i % len(WEBHOOK_KINDS)](signer, run, i) for i in range(count)]
    random.Random(seed).shuffle(requests)
    return requests


# --- batch workload (bench/pipeline_e2e.py) --------------------------------------------------------------------
@dataclass(frozen=True)
class BatchPlan:
    """How ``events`` canonical events are spread over digests, slots and requests.

    Each image digest gets one Grype report with ``findings`` alerts and ``deployments`` deployment events,
    each to another slot of its application. An application's releases (digests) succeed each other in its
    slots, so a slot sees ``digests / apps`` members: the cross-key traffic (slot-member, slot-holder) of a
    fleet that redeploys, not a single hot key.
    """

    events: int
    findings: int = 12
    deployments: int = 8
    releases_per_app: int = 20
    ce_batch: int = 400

    @property
    def per_digest(self) -> int:
        return self.findings + self.deployments

    @property
    def digests(self) -> int:
        return max(1, -(-self.events // self.per_digest))

    @property
    def apps(self) -> int:
        return max(1, self.digests // self.releases_per_app)


def _grype_report(signer: Signer, run: str, d: int, plan: BatchPlan) -> Request:
    image = digest(run, "img", d)
    app = f"app-{d % plan.apps}"
    matches = []
    for f in range(plan.findings):
        cve = f"CVE-2026-{(d * 7 + f * 131) % 90_000 + 10_000}"
        package = f"lib{f}-{d % 17}"
        matches.append({
            "vulnerability": {
                "id": cve, "dataSource": f"https://nvd.nist.gov/vuln/detail/{cve}",
                "namespace": "debian:distro:debian:12", "severity": SEVERITIES[f % len(SEVERITIES)], "urls": [],
                "description": f"Out-of-bounds write in {package} allows remote attackers to run code.",
                "cvss": [{"source": "nvd@nist.gov", "type": "Primary", "version": "3.1",
                          "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "metrics": {"baseScore": round(4.0 + (f % 60) / 10, 1)}, "vendorMetadata": {}}],
                "epss": [{"cve": cve, "epss": round((f % 97) / 100, 2), "percentile": 0.5, "date": "2026-05-01"}],
                "fix": {"versions": [f"{f}.0.1"], "state": "fixed"}},
            "relatedVulnerabilities": [],
            "matchDetails": [],
            "artifact": {"id": f"a{f}", "name": package, "version": f"{f}.0.0", "type": "deb",
                         "locations": [{"path": "/var/lib/dpkg/status"}],
                         "purl": f"pkg:deb/debian/{package}@{f}.0.0"}})
    report = {
        "matches": matches,
        "source": {"type": "image", "target": {
            "userInput": f"ghcr.io/{ORG}/{app}:{d}", "imageID": digest(run, "config", d),
            "manifestDigest": image, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "repoDigests": [f"ghcr.io/{ORG}/{app}@{image}"], "architecture": "amd64", "os": "linux"}},
        "descriptor": {"name": "grype", "version": "0.116.0",
                       "timestamp": _iso(BASE_TIME + timedelta(minutes=d)).replace(".000000", "")}}
    return signer.bearer("grype report", "/events/scans", report, "scans_token")


def _deployment_event(run: str, d: int, s: int, plan: BatchPlan) -> dict[str, Any]:
    app_index = d % plan.apps
    release = d // plan.apps
    logical, physical, cluster = ENVIRONMENTS[s % len(ENVIRONMENTS)]
    return {
        "specversion": "1.0", "id": f"{run}-deploy-{d}-{s}", "source": "//defender.example/subscriptions/1",
        "type": "dev.linkedartifacts.deployment.v1",
        # Later releases deploy later, so each slot's holder moves on release by release.
        "time": _iso(BASE_TIME + timedelta(hours=release, seconds=s)),
        "data": {"digest": digest(run, "img", d), "logical_environment": logical, "physical_environment": physical,
                 "cluster": cluster, "deployment_name": f"app-{app_index}-{s // len(ENVIRONMENTS)}",
                 "runtime_risks": list(RISKS[: (d + s) % 3])}}


def batch_workload(signer: Signer, run: str, plan: BatchPlan, *, seed: int) -> tuple[list[Request], int]:
    """Grype reports and CloudEvents batches for ``plan``; returns them shuffled and the events they carry."""
    requests = [_grype_report(signer, run, d, plan) for d in range(plan.digests)]
    deployments = [_deployment_event(run, d, s, plan) for d in range(plan.digests) for s in range(plan.deployments)]
    # Batches mix digests and slots, as a monitor reporting a whole fleet does.
    random.Random(seed).shuffle(deployments)
    requests.extend(signer.bearer("cloudevents batch", "/events/cloudevents",
                                  deployments[start: start + plan.ce_batch], "cloudevents_token",
                                  content_type="application/cloudevents-batch+json")
                    for start in range(0, len(deployments), plan.ce_batch))
    random.Random(seed + 1).shuffle(requests)
    return requests, plan.digests * plan.findings + len(deployments)
