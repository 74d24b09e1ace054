"""The demo organisation as signed HTTP requests for the connectors, in event-time order.

Each fact of ``linked_artifacts.demo.org`` becomes the request its real source would send:

- builds: GitHub ``workflow_run`` webhooks (``in_progress`` and ``completed``), signed with
  ``X-Hub-Signature-256``;
- images: an Artifactory ``docker`` ``pushed`` webhook (a ``list.manifest.json`` whose ``platforms[]`` carry
  their digests, or a single ``manifest.json``), authenticated by ``X-JFrog-Event-Auth`` in the configured
  mode; and, for images also on GHCR, one ``registry_package`` ``published`` webhook per manifest (each
  platform untagged, then the tagged index), as GitHub fires them;
- packages: an Artifactory ``artifact`` ``deployed`` webhook; npm packages also a GitHub Packages
  ``registry_package`` webhook, Maven packages a metadata API storage record;
- provenance: an in-toto statement with SLSA provenance v1, wrapped in a Sigstore bundle (public
  repositories: with a Rekor entry whose ``integratedTime`` is the event time; private ones: an RFC 3161
  timestamp only) or posted bare (packages);
- deployments: CloudEvents batches from the runtime monitors of the aks and eks clusters, Pod lists and
  ``DELETED`` workload watch events from the agent of the gke clusters, and, at the end, the metadata API's
  cluster bulk and single deployment records of the clusters that have a deployment tracker;
- scans: Trivy and Grype JSON reports (bearer token on ``/events/scans``); Dependabot ``dependabot_alert``
  webhooks on the GitHub webhook.

Ids are deterministic in (seed, now): the same organisation sent twice is a redelivery, not new facts.
Every request knows how many canonical events the connectors will make of it (``expected_events``); the
unit tests run the real parsers over every request to hold that to account.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from linked_artifacts.demo.org import (
    EVENTS_PER_DECOMMISSION,
    EVENTS_PER_GHCR_MANIFEST,
    EVENTS_PER_LINK,
    EVENTS_PER_PACKAGE_FILE,
    EVENTS_PER_PROVENANCE,
    EVENTS_PER_RECORD,
    EVENTS_PER_REPO_ALERT_DELIVERY,
    EVENTS_PER_RUN_DELIVERY,
    EVENTS_PER_RUNNING,
    GHCR_HOST,
    JFROG_DOCKER_REPO,
    JFROG_ORIGIN,
    ORG,
    Build,
    Cluster,
    DeploymentChange,
    Image,
    Manifest,
    Org,
    Package,
    RecordSync,
    RepoAlert,
    Repository,
    Scan,
    Vulnerability,
    present,
)
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import ArtifactoryAuthMode, Settings

__all__ = ["ENDPOINT_PATHS", "Credentials", "DemoRequest", "RequestPlan", "build_plan"]

# Connector endpoint name -> path (the names and paths of connectors.endpoints; a unit test keeps them equal).
_META = "/orgs/{org}/artifacts/metadata"
ENDPOINT_PATHS: dict[str, str] = {
    "github": "/webhooks/github",
    "artifactory": "/webhooks/artifactory",
    "storage-record": f"{_META}/storage-record",
    "deployment-record": f"{_META}/deployment-record",
    "cluster-deployment-records": f"{_META}/deployment-record/cluster/{{cluster}}",
    "attestations": "/events/attestations",
    "cloudevents": "/events/cloudevents",
    "kubernetes": "/events/kubernetes",
    "scans": "/events/scans",
}
# Runtime monitors flush what they saw every so often: at most this many events per request, and never
# holding an event back longer than the window (so event times in one batch stay close together).
BATCH_MAX_EVENTS = 25
BATCH_WINDOW = timedelta(hours=2)
# GitHub allows 1000 records per cluster call; smaller chunks keep each request well under the body limit.
CLUSTER_RECORDS_PER_REQUEST = 100
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_POD_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet
_RELEASE_WORKFLOW = ".github/workflows/release.yml"
_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_DEFENDER_TYPE = "dev.linkedartifacts.deployment.v1"
_SENSOR_TYPE = "dev.linkedartifacts.runtime.container.running.v1"
_DECOMMISSION_TYPE = "dev.linkedartifacts.decommission.v1"
_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


class DemoError(LinkedArtifactsError):
    """The demo cannot run as asked; the message names the fix."""

    code = "demo_error"


class Credentials(NamedTuple):
    """The secret or token of every source the demo imitates."""

    github_webhook_secret: str
    artifactory_secret: str
    artifactory_auth_mode: ArtifactoryAuthMode
    metadata_write_token: str
    attestations_token: str
    cloudevents_token: str
    kubernetes_token: str
    scans_token: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        names = (
            "github_webhook_secret",
            "artifactory_secret",
            "metadata_write_token",
            "attestations_token",
            "cloudevents_token",
            "kubernetes_token",
            "scans_token",
        )
        values = {name: settings.secret(name) for name in names}
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise DemoError(
                f"no {', '.join(missing)} configured. Fix: start the system with `linked-artifacts up` (it writes "
                f"{settings.secrets_file}) using the same LINKED_ARTIFACTS_DATA_DIR, or set "
                + ", ".join("LINKED_ARTIFACTS_" + n.upper() for n in missing)
            )
        return cls(
            github_webhook_secret=values["github_webhook_secret"] or "",
            artifactory_secret=values["artifactory_secret"] or "",
            artifactory_auth_mode=settings.artifactory_auth_mode,
            metadata_write_token=values["metadata_write_token"] or "",
            attestations_token=values["attestations_token"] or "",
            cloudevents_token=values["cloudevents_token"] or "",
            kubernetes_token=values["kubernetes_token"] or "",
            scans_token=values["scans_token"] or "",
        )

    @classmethod
    def placeholder(cls) -> Credentials:
        """Stand-ins for a dry run, which signs nothing anyone checks."""
        fake = "dry-run"
        return cls(fake, fake, "hmac-sha256", fake, fake, fake, fake, fake)


class DemoRequest(NamedTuple):
    """One HTTP POST to the connectors."""

    endpoint: str  # connector endpoint name (connectors.endpoints)
    path: str
    headers: Mapping[str, str]
    body: bytes
    expected_events: int  # canonical events the connectors make of it
    label: str  # what it carries, for progress and error reports
    at: datetime  # event time of what it carries (the plan's order)
    query: Mapping[str, str]  # query parameters (the Kubernetes endpoint's cluster and environment)
    path_params: Mapping[str, str]  # the route's parameters, e.g. org and cluster


class _Planned(NamedTuple):
    at: datetime
    seq: int
    endpoint: str
    events: int
    make: Callable[[], DemoRequest]


@dataclass(frozen=True)
class RequestPlan:
    """Every request of the demo in order, built lazily (bodies are made and signed while sending)."""

    org: Org
    items: tuple[_Planned, ...]
    by_endpoint: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # name -> (requests, events)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[DemoRequest]:
        return (item.make() for item in self.items)

    @property
    def expected_events(self) -> int:
        return sum(item.events for item in self.items)


def build_plan(org: Org, credentials: Credentials) -> RequestPlan:
    """The requests that tell ``org`` to the connectors, sorted by event time."""
    encoder = _Encoder(org, credentials)
    planner = _Planner(encoder)
    with _collector_paused():
        planner.plan()
        items = tuple(sorted(planner.items, key=lambda p: (p.at, p.seq)))
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        totals[item.endpoint][0] += 1
        totals[item.endpoint][1] += item.events
    return RequestPlan(org, items, {k: (v[0], v[1]) for k, v in sorted(totals.items())})


# --- small helpers -------------------------------------------------------------------------------------


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Planning allocates hundreds of thousands of small objects without cycles; the cyclic collector would
    rescan the whole growing heap again and again (7x slower at a million events) to find nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _architecture(platform: str) -> str:
    return platform.split("/")[1]


def _purl(vuln: Vulnerability, *, os_version: str) -> str:
    if vuln.ecosystem == "deb":
        return f"pkg:deb/debian/{vuln.package}@{vuln.installed}?arch=amd64&distro=debian-{os_version}"
    if vuln.ecosystem == "apk":
        return f"pkg:apk/alpine/{vuln.package}@{vuln.installed}?arch=x86_64&distro={os_version}"
    if vuln.ecosystem == "maven":
        group, _, artifact = vuln.package.partition(":")
        return f"pkg:maven/{group}/{artifact}@{vuln.installed}"
    return f"pkg:{vuln.ecosystem}/{vuln.package}@{vuln.installed}"


_OS_RELEASE = {"debian": "12.8", "alpine": "3.20.3"}
_LANGUAGE_FILES = {  # language -> (Trivy target, Trivy type, Grype artifact type, location)
    "java": ("app/app.jar", "jar", "java-archive", "/app/app.jar"),
    "node": ("app/package-lock.json", "npm", "npm", "/app/package-lock.json"),
    "go": ("app/server", "gobinary", "go-module", "/app/server"),
    "python": ("app/requirements.txt", "pip", "python", "/app/requirements.txt"),
}
_DEPENDABOT = {  # catalogue ecosystem -> (Dependabot ecosystem, manifest path)
    "npm": ("npm", "package-lock.json"),
    "maven": ("maven", "pom.xml"),
    "golang": ("go", "go.mod"),
    "pypi": ("pip", "requirements.txt"),
}


class _Encoder:
    """Makes the bodies and signs them. Every id derives from (seed, now, what it identifies)."""

    def __init__(self, org: Org, credentials: Credentials) -> None:
        self.org = org
        self.credentials = credentials
        self._salt = f"{org.seed}|{_iso(org.now)}"

    # -- ids ---------------------------------------------------------------------------------------------

    def hexid(self, *parts: object, length: int = 64) -> str:
        text = "|".join(str(p) for p in (self._salt, *parts))
        return hashlib.sha256(text.encode()).hexdigest()[:length]

    def uuid(self, *parts: object) -> str:
        return str(uuid.UUID(hex=self.hexid(*parts, length=32), version=4))

    def number(self, *parts: object, digits: int = 9) -> int:
        low = int("1" + "0" * (digits - 1))
        return low + int(self.hexid(*parts, length=12), 16) % (9 * low)

    def ulid(self, at: datetime, *parts: object) -> str:
        """A ULID whose time part is ``at``: JFrog event ids are ULIDs, and the connector reads their time."""
        value = (int(at.timestamp() * 1000) << 80) | int(self.hexid(*parts, length=20), 16)
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return "".join(reversed(chars))

    # -- signing -----------------------------------------------------------------------------------------

    def github(self, *, event: str, delivery: str, payload: Any, events: int, label: str, at: datetime) -> DemoRequest:
        body = _json(payload)
        secret = self.credentials.github_webhook_secret.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/demo",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(),
        }
        return DemoRequest("github", ENDPOINT_PATHS["github"], headers, body, events, label, at, {}, {})

    def artifactory(self, *, payload: Any, events: int, label: str, at: datetime) -> DemoRequest:
        body = _json(payload)
        secret = self.credentials.artifactory_secret
        if self.credentials.artifactory_auth_mode == "plain":
            auth = secret
        else:
            auth = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "User-Agent": "JFrog Event/demo", "X-JFrog-Event-Auth": auth}
        return DemoRequest("artifactory", ENDPOINT_PATHS["artifactory"], headers, body, events, label, at, {}, {})

    def bearer(
        self,
        endpoint: str,
        *,
        token: str,
        payload: Any,
        events: int,
        label: str,
        at: datetime,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
        path_params: Mapping[str, str] | None = None,
    ) -> DemoRequest:
        path = ENDPOINT_PATHS[endpoint]
        params = {"org": ORG, **(path_params or {})} if path.startswith("/orgs/") else {}
        for name, value in params.items():
            path = path.replace("{" + name + "}", value)
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {token}"}
        return DemoRequest(endpoint, path, headers, _json(payload), events, label, at, query or {}, params)

    # -- GitHub objects ------------------------------------------------------------------------------------

    def repository(self, repo: Repository) -> dict[str, Any]:
        return {
            "id": self.number("repository", repo.full_name),
            "node_id": "R_" + self.hexid("repository-node", repo.full_name, length=14),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": {"login": ORG, "type": "Organization"},
            "html_url": f"https://github.com/{repo.full_name}",
            "default_branch": "main",
        }

    def organization(self) -> dict[str, Any]:
        return {"login": ORG, "id": self.number("organization", ORG, digits=8)}

    # -- builds ----------------------------------------------------------------------------------------------

    def workflow_run(self, build: Build, *, completed: bool) -> DemoRequest:
        repo = build.repository
        at = build.completed_at if completed else build.started_at + timedelta(seconds=15)
        action = "completed" if completed else "in_progress"
        workflow_id = self.number("workflow", repo.full_name, digits=8)
        url = f"https://github.com/{repo.full_name}/actions/runs/{build.run_id}"
        author = repo.owners[build.run_number % len(repo.owners)]
        run = {
            "id": build.run_id,
            "name": "release",
            "node_id": "WFR_" + self.hexid("run", build.run_id, length=16),
            "head_branch": "main",
            "head_sha": build.commit,
            "path": _RELEASE_WORKFLOW,
            "display_title": f"Release {build.version}",
            "run_number": build.run_number,
            "run_attempt": build.attempt,
            "event": "push",
            "status": "completed" if completed else "in_progress",
            "conclusion": build.conclusion if completed else None,
            "workflow_id": workflow_id,
            "check_suite_id": self.number("suite", build.run_id, build.attempt, digits=11),
            "url": f"https://api.github.com/repos/{repo.full_name}/actions/runs/{build.run_id}",
            "html_url": url,
            "jobs_url": f"https://api.github.com/repos/{repo.full_name}/actions/runs/{build.run_id}/jobs",
            "created_at": _iso(build.started_at),
            "run_started_at": _iso(build.started_at),
            "updated_at": _iso(at),
            "actor": {"login": author},
            "triggering_actor": {"login": author},
            "head_commit": {
                "id": build.commit,
                "message": f"Release {build.version}",
                "timestamp": _iso(build.started_at - timedelta(minutes=2)),
                "author": {"name": author, "email": f"{author}@{ORG}.example"},
            },
            "pull_requests": [],
            "previous_attempt_url": f"{url}/attempts/{build.attempt - 1}" if build.attempt > 1 else None,
        }
        payload = {
            "action": action,
            "workflow_run": run,
            "workflow": {"id": workflow_id, "name": "release", "path": _RELEASE_WORKFLOW, "state": "active"},
            "repository": self.repository(repo),
            "organization": self.organization(),
            "sender": {"login": author},
        }
        return self.github(
            event="workflow_run",
            delivery=self.uuid("workflow_run", build.run_id, build.attempt, action),
            payload=payload,
            events=EVENTS_PER_RUN_DELIVERY,
            label=f"workflow_run {action} {repo.full_name} run {build.run_id}/{build.attempt}",
            at=at,
        )

    # -- images ---------------------------------------------------------------------------------------------

    def docker_pushed(self, build: Build, image: Image) -> DemoRequest:
        pushed_at = present(build.pushed_at, "push time")
        multi = image.index is not None
        file_name = "list.manifest.json" if multi else "manifest.json"
        platforms = [
            {"architecture": _architecture(m.platform), "os": "linux", **({"digest": m.digest} if multi else {})}
            for m in image.manifests
        ]
        data = {
            "repo_key": JFROG_DOCKER_REPO,
            "event_type": "pushed",
            "path": f"{image.name}/{image.version}/{file_name}",
            "name": file_name,
            "sha256": _hex(image.subject),
            "size": image.index_size if multi else image.manifests[0].size,
            "image_name": image.name,
            "tag": image.version,
            "image_type": "docker",
            "platforms": platforms,
        }
        payload = {
            "domain": "docker",
            "event_type": "pushed",
            "id": self.ulid(pushed_at, "docker", image.subject),
            "subscription_key": "linked-artifacts-docker",
            "jpd_origin": JFROG_ORIGIN,
            "data": data,
        }
        events = 1 + (EVENTS_PER_LINK * len(image.manifests) if multi else 0)
        return self.artifactory(
            payload=payload, events=events, label=f"docker pushed {image.name}:{image.version}", at=pushed_at
        )

    def ghcr_published(self, build: Build, image: Image, manifest: Manifest | None, at: datetime) -> DemoRequest:
        """One ``registry_package`` delivery: a platform manifest (untagged) or, with ``manifest=None``, the
        tagged index (or the only manifest of a single-platform image)."""
        repo = build.repository
        if manifest is None and image.index is not None:
            digest, tag, media_type, size, config = image.index, image.version, _OCI_INDEX, image.index_size, None
        else:
            chosen = manifest or image.manifests[0]
            tag = image.version if manifest is None else ""
            digest, media_type, size = chosen.digest, _OCI_MANIFEST, chosen.size
            config = {"digest": chosen.config_digest, "media_type": _OCI_CONFIG, "size": 6_000 + size % 4_000}
        package_name = image.name.split("/", 1)[1]
        manifest_body: dict[str, Any] = {
            "digest": digest,
            "media_type": media_type,
            "uri": f"repos/{image.name}/manifests/{digest}",
            "size": size,
        }
        if config is not None:
            manifest_body["config"] = config
        version = {
            "id": self.number("package-version", digest),
            "version": digest,
            "name": digest,
            "html_url": f"https://github.com/{ORG}/{package_name}/pkgs/container/{package_name}",
            # GitHub sends an untagged push's URL with a bare trailing colon.
            "package_url": f"{GHCR_HOST}/{image.name}:{tag}",
            "created_at": _iso(at),
            "updated_at": _iso(at),
            "container_metadata": {
                "tag": {"name": tag, "digest": digest},
                "labels": {
                    "all_labels": {
                        "org.opencontainers.image.source": f"https://github.com/{repo.full_name}",
                        "org.opencontainers.image.revision": build.commit,
                        "org.opencontainers.image.version": image.version,
                    }
                },
                "manifest": manifest_body,
            },
        }
        payload = {
            "action": "published",
            "registry_package": {
                "id": self.number("package", image.name),
                "name": package_name,
                "namespace": ORG,
                "ecosystem": "CONTAINER",
                "package_type": "CONTAINER",
                "owner": {"login": ORG, "type": "Organization"},
                "html_url": version["html_url"],
                "package_version": version,
                "registry": {
                    "name": "GitHub CONTAINER registry",
                    "type": "CONTAINER",
                    "url": f"https://{GHCR_HOST}/{ORG}",
                    "vendor": "GitHub Inc",
                },
            },
            "repository": self.repository(repo),
            "organization": self.organization(),
            "sender": {"login": "github-actions[bot]"},
        }
        what = tag or (manifest.platform if manifest else "manifest")
        return self.github(
            event="registry_package",
            delivery=self.uuid("registry_package", digest),
            payload=payload,
            events=EVENTS_PER_GHCR_MANIFEST,
            label=f"registry_package published {GHCR_HOST}/{image.name} {what}",
            at=at,
        )

    # -- packages ---------------------------------------------------------------------------------------------

    def artifact_deployed(self, build: Build, package: Package) -> DemoRequest:
        pushed_at = present(build.pushed_at, "push time")
        payload = {
            "domain": "artifact",
            "event_type": "deployed",
            "id": self.ulid(pushed_at, "artifact", package.digest),
            "subscription_key": "linked-artifacts-artifacts",
            "jpd_origin": JFROG_ORIGIN,
            "data": {
                "repo_key": package.repository,
                "path": package.path,
                "name": package.file_name,
                "sha256": _hex(package.digest),
                "size": package.size,
            },
        }
        return self.artifactory(
            payload=payload,
            events=EVENTS_PER_PACKAGE_FILE,
            label=f"artifact deployed {package.repository}/{package.path}",
            at=pushed_at,
        )

    def npm_published(self, build: Build, package: Package, at: datetime) -> DemoRequest:
        repo = build.repository
        html_url = f"https://github.com/{repo.full_name}/pkgs/npm/{repo.name}"
        payload = {
            "action": "published",
            "registry_package": {
                "id": self.number("package", package.name),
                "name": repo.name,
                "namespace": ORG,
                "ecosystem": "npm",
                "package_type": "npm",
                "owner": {"login": ORG, "type": "Organization"},
                "html_url": html_url,
                "package_version": {
                    "id": self.number("package-version", package.digest),
                    "version": package.version,
                    "name": package.version,
                    "html_url": f"{html_url}/{self.number('npm-html', package.digest)}",
                    "package_url": f"npm.pkg.github.com/{package.name}@{package.version}",
                    "created_at": _iso(at),
                    "updated_at": _iso(at),
                    "package_files": [
                        {
                            "name": package.file_name,
                            "sha256": _hex(package.digest),
                            "size": package.size,
                            "content_type": "application/octet-stream",
                            "state": "uploaded",
                            "created_at": _iso(at),
                            "updated_at": _iso(at),
                        }
                    ],
                },
                "registry": {
                    "name": "GitHub npm registry",
                    "type": "npm",
                    "url": f"https://npm.pkg.github.com/{ORG}",
                    "vendor": "GitHub Inc",
                },
            },
            "repository": self.repository(repo),
            "organization": self.organization(),
            "sender": {"login": "github-actions[bot]"},
        }
        return self.github(
            event="registry_package",
            delivery=self.uuid("registry_package", package.digest),
            payload=payload,
            events=EVENTS_PER_PACKAGE_FILE,
            label=f"registry_package published {package.name}@{package.version}",
            at=at,
        )

    def storage_record(self, build: Build, package: Package, at: datetime) -> DemoRequest:
        payload = {
            "name": package.name,
            "digest": package.digest,
            "version": package.version,
            "artifact_url": f"{JFROG_ORIGIN}/artifactory/{package.repository}/{package.path}",
            "path": package.path,
            "registry_url": f"{JFROG_ORIGIN}/artifactory/",
            "repository": package.repository,
            "status": "active",
            "github_repository": build.repository.name,
        }
        return self.bearer(
            "storage-record",
            token=self.credentials.metadata_write_token,
            payload=payload,
            events=EVENTS_PER_PACKAGE_FILE,
            label=f"storage-record {package.name}@{package.version}",
            at=at,
        )

    # -- provenance -------------------------------------------------------------------------------------------

    def provenance(self, build: Build) -> DemoRequest:
        repo = build.repository
        attested_at, subject = present(build.attested_at, "attestation time"), present(build.subject, "subject")
        if build.image is not None:
            subject_name = build.image.repository_reference
        else:
            subject_name = present(build.package, "package").file_name
        statement = {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": subject_name, "digest": {"sha256": _hex(subject)}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {
                        "workflow": {
                            "ref": "refs/heads/main",
                            "repository": f"https://github.com/{repo.full_name}",
                            "path": _RELEASE_WORKFLOW,
                        }
                    },
                    "internalParameters": {
                        "github": {
                            "event_name": "push",
                            "repository_id": str(self.number("repository", repo.full_name)),
                            "repository_owner_id": str(self.number("organization", ORG, digits=8)),
                            "runner_environment": "github-hosted",
                        }
                    },
                    "resolvedDependencies": [
                        {
                            "uri": f"git+https://github.com/{repo.full_name}@refs/heads/main",
                            "digest": {"gitCommit": build.commit},
                        }
                    ],
                },
                "runDetails": {
                    "builder": {"id": f"https://github.com/{repo.full_name}/{_RELEASE_WORKFLOW}@refs/heads/main"},
                    "metadata": {
                        "invocationId": (
                            f"https://github.com/{repo.full_name}/actions/runs/{build.run_id}/attempts/{build.attempt}"
                        )
                    },
                },
            },
        }
        label = f"provenance {subject_name}@{build.version}"
        token = self.credentials.attestations_token
        if build.package is not None:
            # Package attestations are uploaded as the bare statement.
            return self.bearer(
                "attestations",
                token=token,
                payload=statement,
                events=EVENTS_PER_PROVENANCE,
                label=label,
                at=attested_at,
                content_type="application/vnd.in-toto+json",
            )
        return self.bearer(
            "attestations",
            token=token,
            payload=self.bundle(build, statement),
            events=EVENTS_PER_PROVENANCE,
            label=label,
            at=attested_at,
            content_type=_BUNDLE_MEDIA_TYPE,
        )

    def bundle(self, build: Build, statement: dict[str, Any]) -> dict[str, Any]:
        """A Sigstore bundle v0.3: public repositories log to Rekor, private ones only get a timestamp."""
        attested_at = present(build.attested_at, "attestation time")
        seed = ("bundle", build.run_id, build.attempt)
        material: dict[str, Any] = {"certificate": {"rawBytes": _b64(bytes.fromhex(self.hexid(*seed, "cert") * 6))}}
        if build.repository.private:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": _b64(bytes.fromhex(self.hexid(*seed, "tsa") * 3))}]
            }
        else:
            material["tlogEntries"] = [
                {
                    "logIndex": str(self.number(*seed, "log", digits=9)),
                    "logId": {"keyId": _b64(bytes.fromhex(self.hexid("rekor")))},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": str(int(attested_at.timestamp())),
                    "inclusionPromise": {"signedEntryTimestamp": _b64(bytes.fromhex(self.hexid(*seed, "set")))},
                    "canonicalizedBody": _b64(_json({"kind": "dsse", "apiVersion": "0.0.1"})),
                }
            ]
            material["timestampVerificationData"] = {"rfc3161Timestamps": []}
        return {
            "mediaType": _BUNDLE_MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": _b64(_json(statement)),
                "payloadType": "application/vnd.in-toto+json",
                "signatures": [{"sig": _b64(bytes.fromhex(self.hexid(*seed, "sig") * 2)), "keyid": ""}],
            },
        }

    # -- scans ------------------------------------------------------------------------------------------------

    def trivy(self, scan: Scan) -> DemoRequest:
        image, manifest, repo = scan.image, scan.manifest, scan.build.repository
        base_os = present(repo.base_os, "base image")
        os_version = _OS_RELEASE[base_os]
        layers = [self.hexid("layer", image.subject, n) for n in range(3)]
        os_findings = [v for v in scan.findings if v.ecosystem in ("deb", "apk")]
        language_findings = [v for v in scan.findings if v.ecosystem not in ("deb", "apk")]
        target, kind, _, _ = _LANGUAGE_FILES[repo.language]
        results: list[dict[str, Any]] = []
        for result_target, result_class, result_type, findings in (
            (f"{image.reference} ({base_os} {os_version})", "os-pkgs", base_os, os_findings),
            (target, "lang-pkgs", kind, language_findings),
        ):
            result: dict[str, Any] = {"Target": result_target, "Class": result_class, "Type": result_type}
            if findings:
                result["Vulnerabilities"] = [self.trivy_finding(v, layers, os_version) for v in findings]
            results.append(result)
        payload = {
            "SchemaVersion": 2,
            "Trivy": {"Version": "0.69.1"},
            "ReportID": self.uuid("trivy", image.subject, _iso(scan.at)),
            "CreatedAt": _iso(scan.at),
            "ArtifactID": "sha256:" + self.hexid("trivy-artifact", image.subject),
            "ArtifactName": image.reference,
            "ArtifactType": "container_image",
            "Metadata": {
                "Size": 40_000_000 + manifest.size * 1_000,
                "OS": {"Family": base_os, "Name": os_version},
                "ImageID": manifest.config_digest,
                "DiffIDs": [f"sha256:{layer}" for layer in layers],
                "RepoTags": [image.reference],
                "RepoDigests": [f"{image.repository_reference}@{image.subject}"],
                "Reference": image.reference,
                "ImageConfig": {
                    "architecture": _architecture(manifest.platform),
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer}" for layer in layers]},
                },
            },
            "Results": results,
        }
        return self.bearer(
            "scans",
            token=self.credentials.scans_token,
            payload=payload,
            events=len(scan.findings),
            label=f"trivy {image.reference}",
            at=scan.at,
        )

    @staticmethod
    def trivy_finding(vuln: Vulnerability, layers: Sequence[str], os_version: str) -> dict[str, Any]:
        severity_level = {"low": 1, "medium": 2, "high": 3, "critical": 4}[vuln.severity]
        layer = layers[1] if vuln.ecosystem in ("deb", "apk") else layers[2]
        return {
            "VulnerabilityID": vuln.cve,
            "PkgID": f"{vuln.package}@{vuln.installed}",
            "PkgName": vuln.package,
            "PkgIdentifier": {"PURL": _purl(vuln, os_version=os_version), "UID": layer[:16]},
            "InstalledVersion": vuln.installed,
            "FixedVersion": vuln.fixed,
            "Status": "fixed",
            "Layer": {"DiffID": f"sha256:{layer}"},
            "SeveritySource": "nvd",
            "PrimaryURL": f"https://avd.aquasec.com/nvd/{vuln.cve.lower()}",
            "DataSource": {"ID": "nvd", "Name": "National Vulnerability Database", "URL": "https://nvd.nist.gov"},
            "Title": vuln.title,
            "Description": f"{vuln.title}. (Demo data: this CVE is made up.)",
            "Severity": vuln.severity.upper(),
            "VendorSeverity": {"nvd": severity_level},
            "CVSS": {"nvd": {"V3Vector": vuln.vector, "V3Score": vuln.cvss}},
        }

    def grype(self, scan: Scan) -> DemoRequest:
        image, manifest, repo = scan.image, scan.manifest, scan.build.repository
        base_os = present(repo.base_os, "base image")
        os_version = _OS_RELEASE[base_os]
        payload = {
            "matches": [self.grype_match(v, repo, scan, os_version) for v in scan.findings],
            "source": {
                "type": "image",
                "target": {
                    "userInput": image.reference,
                    "imageID": manifest.config_digest,
                    "manifestDigest": manifest.digest,
                    "mediaType": _OCI_MANIFEST,
                    "tags": [image.reference],
                    "imageSize": 40_000_000 + manifest.size * 1_000,
                    "repoDigests": [f"{image.repository_reference}@{image.subject}"],
                    "architecture": _architecture(manifest.platform),
                    "os": "linux",
                },
            },
            "distro": {"name": base_os, "version": os_version.split(".")[0], "idLike": []},
            "descriptor": {
                "name": "grype",
                "version": "0.116.0",
                "timestamp": _iso(scan.at),
                "db": {"status": {"schemaVersion": "v6.0.2", "built": _iso(scan.at - timedelta(hours=5))}},
            },
        }
        links = EVENTS_PER_LINK if image.index else 0
        return self.bearer(
            "scans",
            token=self.credentials.scans_token,
            payload=payload,
            events=len(scan.findings) + links,
            label=f"grype {image.reference} {manifest.platform}",
            at=scan.at,
        )

    def grype_match(self, vuln: Vulnerability, repo: Repository, scan: Scan, os_version: str) -> dict[str, Any]:
        os_package = vuln.ecosystem in ("deb", "apk")
        _, _, language_type, location = _LANGUAGE_FILES[repo.language]
        namespace = (
            f"{repo.base_os}:distro:{repo.base_os}:{os_version.rsplit('.', 1)[0]}"
            if os_package
            else f"github:language:{repo.language}"
        )
        record = {
            "id": vuln.cve,
            "dataSource": f"https://nvd.nist.gov/vuln/detail/{vuln.cve}",
            "namespace": namespace,
            "severity": vuln.severity.title(),
            "urls": [f"https://nvd.nist.gov/vuln/detail/{vuln.cve}"],
            "description": f"{vuln.title}. (Demo data: this CVE is made up.)",
            "cvss": [
                {
                    "source": "nvd@nist.gov",
                    "type": "Primary",
                    "version": "3.1",
                    "vector": vuln.vector,
                    "metrics": {"baseScore": vuln.cvss},
                    "vendorMetadata": {},
                }
            ],
            "epss": [
                {"cve": vuln.cve, "epss": vuln.epss, "percentile": vuln.percentile, "date": scan.at.date().isoformat()}
            ],
            "fix": {"versions": [vuln.fixed], "state": "fixed"},
            "advisories": [],
            "risk": round(vuln.cvss * vuln.epss * 10, 2),
        }
        related = []
        if not os_package:
            # Run with --by-cve: the CVE leads, the GitHub advisory it came from is related.
            related.append(
                {
                    "id": vuln.ghsa,
                    "dataSource": f"https://github.com/advisories/{vuln.ghsa}",
                    "namespace": namespace,
                    "severity": vuln.severity.title(),
                    "urls": [f"https://github.com/advisories/{vuln.ghsa}"],
                    "description": vuln.title,
                    "cvss": [],
                    "epss": [],
                }
            )
        return {
            "vulnerability": record,
            "relatedVulnerabilities": related,
            "matchDetails": [
                {
                    "type": "exact-direct-match",
                    "matcher": "dpkg-matcher" if vuln.ecosystem == "deb" else f"{vuln.ecosystem}-matcher",
                    "searchedBy": {"package": {"name": vuln.package, "version": vuln.installed}},
                    "found": {"vulnerabilityID": vuln.cve, "versionConstraint": f"< {vuln.fixed}"},
                    "fix": {"suggestedVersion": vuln.fixed},
                }
            ],
            "artifact": {
                "id": self.hexid("grype-artifact", vuln.package, vuln.installed, length=16),
                "name": vuln.package,
                "version": vuln.installed,
                "type": vuln.ecosystem if os_package else language_type,
                "locations": [
                    {"path": "/var/lib/dpkg/status" if vuln.ecosystem == "deb" else "/lib/apk/db/installed"}
                    if os_package
                    else {"path": location}
                ],
                "language": "" if os_package else repo.language,
                "licenses": [],
                "cpes": [],
                "purl": _purl(vuln, os_version=os_version),
                "upstreams": [],
            },
        }

    def dependabot(self, alert: RepoAlert, *, closing: bool) -> DemoRequest:
        repo, vuln = alert.repository, alert.vulnerability
        ecosystem, manifest_path = _DEPENDABOT[vuln.ecosystem]
        action = alert.resolution if closing and alert.resolution else "created"
        at = alert.closed_at if closing and alert.closed_at else alert.created_at
        package = {"ecosystem": ecosystem, "name": vuln.package}
        html_url = f"https://github.com/{repo.full_name}/security/dependabot/{alert.number}"
        body: dict[str, Any] = {
            "number": alert.number,
            "state": "open" if action == "created" else action,
            "dependency": {"package": package, "manifest_path": manifest_path, "scope": "runtime"},
            "security_advisory": {
                "ghsa_id": vuln.ghsa,
                "cve_id": vuln.cve,
                "summary": vuln.title,
                "description": f"{vuln.title}. (Demo data: this advisory is made up.)",
                "severity": vuln.severity,
                "identifiers": [{"type": "GHSA", "value": vuln.ghsa}, {"type": "CVE", "value": vuln.cve}],
                "references": [{"url": f"https://nvd.nist.gov/vuln/detail/{vuln.cve}"}],
                "published_at": _iso(self.org.start - timedelta(days=20)),
                "updated_at": _iso(self.org.start - timedelta(days=2)),
                "withdrawn_at": None,
                "cvss": {"vector_string": vuln.vector, "score": vuln.cvss},
                "cvss_severities": {
                    "cvss_v3": {"vector_string": vuln.vector, "score": vuln.cvss},
                    "cvss_v4": {"vector_string": None, "score": 0.0},
                },
                # GitHub's own example sends the percentile as text in exponent form.
                "epss": {"percentage": vuln.epss, "percentile": f"{vuln.percentile}e0"},
                "cwes": [],
            },
            "security_vulnerability": {
                "package": package,
                "severity": vuln.severity,
                "vulnerable_version_range": f"< {vuln.fixed}",
                "first_patched_version": {"identifier": vuln.fixed},
            },
            "url": f"https://api.github.com/repos/{repo.full_name}/dependabot/alerts/{alert.number}",
            "html_url": html_url,
            "created_at": _iso(alert.created_at),
            "updated_at": _iso(at),
            "dismissed_at": _iso(at) if action == "dismissed" else None,
            "dismissed_by": {"login": repo.owners[0]} if action == "dismissed" else None,
            "dismissed_reason": "tolerable_risk" if action == "dismissed" else None,
            "dismissed_comment": "Not reachable from our code paths." if action == "dismissed" else None,
            "fixed_at": _iso(at) if action == "fixed" else None,
            "auto_dismissed_at": None,
        }
        payload = {
            "action": action,
            "alert": body,
            "repository": self.repository(repo),
            "organization": self.organization(),
            "sender": {"login": repo.owners[0] if action == "dismissed" else "github"},
        }
        return self.github(
            event="dependabot_alert",
            delivery=self.uuid("dependabot_alert", repo.full_name, alert.number, action),
            payload=payload,
            events=EVENTS_PER_REPO_ALERT_DELIVERY,
            label=f"dependabot_alert {action} {repo.full_name}#{alert.number} {vuln.cve}",
            at=at,
        )

    # -- deployments --------------------------------------------------------------------------------------

    def cloudevents(self, cluster: Cluster, changes: Sequence[DeploymentChange]) -> DemoRequest:
        monitor = cluster.name.split("-", 1)[0]
        if monitor == "aks":
            source = (
                f"//defender.example/subscriptions/{self.uuid('subscription', cluster.name)}/clusters/{cluster.name}"
            )
        else:
            source = f"//runtime-sensor.example/{monitor}/{cluster.name}"
        batch = [self.cloudevent(source, monitor, c) for c in changes]
        events = sum(EVENTS_PER_RUNNING if c.status == "deployed" else EVENTS_PER_DECOMMISSION for c in changes)
        return self.bearer(
            "cloudevents",
            token=self.credentials.cloudevents_token,
            payload=batch,
            events=events,
            label=f"cloudevents {cluster.name} x{len(changes)}",
            at=changes[-1].at,
            content_type="application/cloudevents-batch+json",
        )

    def cloudevent(self, source: str, monitor: str, change: DeploymentChange) -> dict[str, Any]:
        slot, image, repo = change.slot, change.image, change.build.repository
        data: dict[str, Any] = {
            "logical_environment": slot.environment,
            "physical_environment": slot.cluster.region,
            "cluster": slot.cluster.name,
            "namespace": slot.namespace,
            "workload_kind": "Deployment",
            "workload": slot.workload,
            "container": slot.container,
            "name": image.name,
            "version": image.version,
            "github_repository": repo.full_name,
            "tags": {"team": repo.team},
        }
        if change.status == "decommissioned":
            kind, data["digest"] = _DECOMMISSION_TYPE, change.digest
        elif monitor == "aks":
            kind = _DEFENDER_TYPE
            data |= {
                "digest": change.digest,
                "image_ref": image.reference,
                "runtime_risks": list(change.risks),
                "risks_asserted_by": "defender-for-cloud",
                "status": "deployed",
            }
        else:
            # A runtime sensor reports what the container runtime resolved: the tag pinned to its digest.
            kind = _SENSOR_TYPE
            data |= {
                "image_id_digest": change.digest,
                "image_ref": f"{image.reference}@{change.digest}",
                "runtime_risks": list(change.risks),
            }
        return {
            "specversion": "1.0",
            "id": self.uuid(
                "cloudevent", slot.cluster.name, slot.deployment_name, change.digest, change.status, _iso(change.at)
            ),
            "source": source,
            "type": kind,
            "subject": change.digest,
            "time": _iso(change.at),
            "datacontenttype": "application/json",
            "data": data,
        }

    def pod_list(self, cluster: Cluster, changes: Sequence[DeploymentChange]) -> DemoRequest:
        pods = [self.pod(c) for c in changes]
        payload = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": ""}, "items": pods}
        return self.bearer(
            "kubernetes",
            token=self.credentials.kubernetes_token,
            payload=payload,
            events=EVENTS_PER_RUNNING * len(changes),
            label=f"pods {cluster.name} x{len(changes)}",
            at=changes[-1].at,
            query=self.cluster_query(cluster),
        )

    @staticmethod
    def cluster_query(cluster: Cluster) -> dict[str, str]:
        return {"cluster": cluster.name, "environment": cluster.environment, "region": cluster.region}

    def pod_template_hash(self, change: DeploymentChange) -> str:
        raw = int(self.hexid("template", change.slot.cluster.name, change.slot.workload, change.digest), 16)
        chars = []
        for _ in range(10):
            chars.append(_POD_HASH_ALPHABET[raw % len(_POD_HASH_ALPHABET)])
            raw //= len(_POD_HASH_ALPHABET)
        return "".join(chars)

    def pod(self, change: DeploymentChange) -> dict[str, Any]:
        slot, image, repo = change.slot, change.image, change.build.repository
        template_hash = self.pod_template_hash(change)
        replica_set = f"{slot.workload}-{template_hash}"
        suffix = "".join(
            _POD_HASH_ALPHABET[int(c, 16)]
            for c in self.hexid("pod", slot.cluster.name, slot.workload, change.digest, _iso(change.at), length=5)
        )
        annotations = {"metadata.github.com/team": repo.team}
        if change.risks:
            annotations["metadata.github.com/runtime-risks"] = ",".join(change.risks)
        started = _iso(change.at)
        created = _iso(change.at - timedelta(seconds=20))
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": f"{replica_set}-{suffix}",
                "namespace": slot.namespace,
                "uid": self.uuid("pod", slot.cluster.name, slot.workload, change.digest, started),
                "creationTimestamp": created,
                "labels": {"app.kubernetes.io/name": slot.workload, "pod-template-hash": template_hash},
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "ReplicaSet",
                        "name": replica_set,
                        "uid": self.uuid("replicaset", slot.cluster.name, replica_set),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"containers": [{"name": slot.container, "image": image.reference}]},
            "status": {
                "phase": "Running",
                "startTime": created,
                "containerStatuses": [
                    {
                        "name": slot.container,
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "image": image.reference,
                        "imageID": f"{image.repository_reference}@{change.digest}",
                        "containerID": "containerd://"
                        + self.hexid("container", slot.cluster.name, started, slot.workload),
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            },
        }

    def workload_deleted(self, change: DeploymentChange) -> DemoRequest:
        slot, image = change.slot, change.image
        payload = {
            "type": "DELETED",
            "object": {
                "kind": "Deployment",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": slot.workload,
                    "namespace": slot.namespace,
                    "uid": self.uuid("deployment", slot.cluster.name, slot.workload),
                    "resourceVersion": str(self.number("rv", slot.cluster.name, slot.workload)),
                    "deletionTimestamp": _iso(change.at),
                },
                # Templates name images by tag, so the slot (not a digest) is what ends.
                "spec": {"template": {"spec": {"containers": [{"name": slot.container, "image": image.reference}]}}},
            },
        }
        return self.bearer(
            "kubernetes",
            token=self.credentials.kubernetes_token,
            payload=payload,
            events=EVENTS_PER_DECOMMISSION,
            label=f"deployment deleted {slot.cluster.name}/{slot.deployment_name}",
            at=change.at,
            query=self.cluster_query(slot.cluster),
        )

    @staticmethod
    def record_fields(change: DeploymentChange) -> dict[str, Any]:
        repo = change.build.repository
        return {
            "name": change.image.name,
            "digest": change.digest,
            "version": change.image.version,
            "status": "deployed",
            "deployment_name": change.slot.deployment_name,
            "github_repository": repo.name,
            "tags": {"team": repo.team},
            "runtime_risks": list(change.risks),
        }

    def cluster_records(self, cluster: Cluster, records: Sequence[RecordSync], part: int) -> DemoRequest:
        payload = {
            "logical_environment": cluster.environment,
            "physical_environment": cluster.region,
            "deployments": [self.record_fields(r.change) for r in records],
        }
        return self.bearer(
            "cluster-deployment-records",
            token=self.credentials.metadata_write_token,
            payload=payload,
            events=EVENTS_PER_RECORD * len(records),
            label=f"cluster records {cluster.name} part {part}",
            at=self.org.now,
            path_params={"cluster": cluster.name},
        )

    def deployment_record(self, record: RecordSync) -> DemoRequest:
        change = record.change
        payload = {
            **self.record_fields(change),
            "logical_environment": change.slot.environment,
            "physical_environment": change.slot.cluster.region,
            "cluster": change.slot.cluster.name,
        }
        return self.bearer(
            "deployment-record",
            token=self.credentials.metadata_write_token,
            payload=payload,
            events=EVENTS_PER_RECORD,
            label=f"deployment record {change.slot.cluster.name}/{change.slot.deployment_name}",
            at=self.org.now,
        )


class _Planner:
    """Lists every request with its time, endpoint and event count; bodies are made only when sent."""

    def __init__(self, encoder: _Encoder) -> None:
        self.encoder = encoder
        self.org = encoder.org
        self.items: list[_Planned] = []

    def add(self, at: datetime, endpoint: str, events: int, make: Callable[[], DemoRequest]) -> None:
        self.items.append(_Planned(at, len(self.items), endpoint, events, make))

    def plan(self) -> None:
        for build in self.org.builds:
            self.plan_build(build)
        for scan in self.org.scans:
            self.plan_scan(scan)
        for alert in self.org.repo_alerts:
            self.plan_repo_alert(alert)
        self.plan_deployments()
        self.plan_records()

    def plan_build(self, build: Build) -> None:
        enc = self.encoder
        self.add(
            build.started_at + timedelta(seconds=15),
            "github",
            EVENTS_PER_RUN_DELIVERY,
            lambda: enc.workflow_run(build, completed=False),
        )
        self.add(build.completed_at, "github", EVENTS_PER_RUN_DELIVERY, lambda: enc.workflow_run(build, completed=True))
        if build.pushed_at is None or build.attested_at is None:
            return
        pushed = build.pushed_at
        if build.image is not None:
            image = build.image
            links = EVENTS_PER_LINK * len(image.manifests) if image.index else 0
            self.add(pushed, "artifactory", 1 + links, lambda: enc.docker_pushed(build, image))
            if image.on_ghcr:
                # GitHub fires once per manifest: the platforms, then the tagged index.
                order: list[Manifest | None] = [*image.manifests, None] if image.index else [None]
                for position, manifest in enumerate(order):
                    at = pushed + timedelta(seconds=5 + 3 * position)
                    self.add(
                        at, "github", EVENTS_PER_GHCR_MANIFEST, partial(enc.ghcr_published, build, image, manifest, at)
                    )
        if build.package is not None:
            package = build.package
            self.add(pushed, "artifactory", EVENTS_PER_PACKAGE_FILE, lambda: enc.artifact_deployed(build, package))
            later = pushed + timedelta(seconds=30)
            if package.on_github_packages:
                self.add(later, "github", EVENTS_PER_PACKAGE_FILE, lambda: enc.npm_published(build, package, later))
            if package.storage_record:
                self.add(
                    later, "storage-record", EVENTS_PER_PACKAGE_FILE, lambda: enc.storage_record(build, package, later)
                )
        self.add(build.attested_at, "attestations", EVENTS_PER_PROVENANCE, lambda: enc.provenance(build))

    def plan_scan(self, scan: Scan) -> None:
        enc = self.encoder
        if scan.tool == "trivy":
            self.add(scan.at, "scans", len(scan.findings), lambda: enc.trivy(scan))
        else:
            links = EVENTS_PER_LINK if scan.image.index else 0
            self.add(scan.at, "scans", len(scan.findings) + links, lambda: enc.grype(scan))

    def plan_repo_alert(self, alert: RepoAlert) -> None:
        enc = self.encoder
        self.add(
            alert.created_at, "github", EVENTS_PER_REPO_ALERT_DELIVERY, lambda: enc.dependabot(alert, closing=False)
        )
        if alert.closed_at is not None:
            self.add(
                alert.closed_at, "github", EVENTS_PER_REPO_ALERT_DELIVERY, lambda: enc.dependabot(alert, closing=True)
            )

    def plan_deployments(self) -> None:
        enc = self.encoder
        by_cluster: dict[str, list[DeploymentChange]] = defaultdict(list)
        for change in self.org.deployments:
            by_cluster[change.slot.cluster.name].append(change)
        for name in sorted(by_cluster):
            changes = by_cluster[name]
            cluster = changes[0].slot.cluster
            if cluster.channel == "cloudevents":
                for batch in _batches(changes):
                    events = sum(
                        EVENTS_PER_RUNNING if c.status == "deployed" else EVENTS_PER_DECOMMISSION for c in batch
                    )
                    self.add(batch[-1].at, "cloudevents", events, partial(enc.cloudevents, cluster, batch))
                continue
            running = [c for c in changes if c.status == "deployed"]
            for batch in _batches(running):
                self.add(
                    batch[-1].at, "kubernetes", EVENTS_PER_RUNNING * len(batch), partial(enc.pod_list, cluster, batch)
                )
            for change in changes:
                if change.status == "decommissioned":
                    self.add(change.at, "kubernetes", EVENTS_PER_DECOMMISSION, partial(enc.workload_deleted, change))

    def plan_records(self) -> None:
        enc = self.encoder
        by_cluster: dict[str, list[RecordSync]] = defaultdict(list)
        for record in self.org.records:
            by_cluster[record.change.slot.cluster.name].append(record)
        for name in sorted(by_cluster):
            records = sorted(by_cluster[name], key=lambda r: r.change.slot.deployment_name)
            cluster = records[0].change.slot.cluster
            if cluster.records == "cluster":
                for part, start in enumerate(range(0, len(records), CLUSTER_RECORDS_PER_REQUEST), 1):
                    chunk = records[start : start + CLUSTER_RECORDS_PER_REQUEST]
                    make = partial(enc.cluster_records, cluster, chunk, part)
                    self.add(self.org.now, "cluster-deployment-records", EVENTS_PER_RECORD * len(chunk), make)
            else:
                for record in records:
                    self.add(
                        self.org.now, "deployment-record", EVENTS_PER_RECORD, partial(enc.deployment_record, record)
                    )


def _batches(changes: Sequence[DeploymentChange]) -> list[list[DeploymentChange]]:
    """Consecutive changes grouped as a monitor flushes them: up to BATCH_MAX_EVENTS within BATCH_WINDOW."""
    batches: list[list[DeploymentChange]] = []
    for change in changes:
        current = batches[-1] if batches else None
        if current and len(current) < BATCH_MAX_EVENTS and change.at - current[0].at < BATCH_WINDOW:
            current.append(change)
        else:
            batches.append([change])
    return batches
