"""A deterministic model of a demo organisation over the 30 days that end at ``now``.

The organisation ``acme`` has teams that own repositories. Each repository is a multi-arch service, a
single-platform worker, or an npm / Maven library, and releases versions: a GitHub Actions run builds each
one (sometimes after a failed first attempt), pushes it to Artifactory and often to GHCR, and attests it with
SLSA provenance. Services and workers roll out to dev, then some versions to staging, then some to prod,
across clusters per environment and region; each rollout takes over the deployment slot from the version
before it, now and then a prod rollout is rolled back, and a few slots are decommissioned. Runtime risks
follow the workload: internet-facing services are internet-exposed in prod, payment and identity workloads
handle sensitive data. Images carry vulnerabilities from a small made-up CVE catalogue: Trivy scans every
pushed image, Grype rescans what runs in prod weekly, and Dependabot raises repository-level alerts for the
language dependencies (fixed when a release upgrades them, sometimes dismissed). At the end a deployment
tracker posts the current deployment records of some clusters through the artifact metadata API.

Determinism: everything derives from ``(seed, now)``. Each repository draws from its own random stream
(``seed`` and its position), so adding repositories never changes the ones before. Digests depend on the
seed, the artifact name, its version and the platform only: the same seed names the same artifacts whatever
``now`` is.

Size: repositories are added one at a time until the canonical events the connectors will make of them
reach ``target_events`` (so the total overshoots by less than one repository). The count per fact is
fixed by the parsers (see ``EVENTS_*`` and ``Org.counts``); the unit tests check it against them.

``expected_summary(org)`` gives the answers a fresh system that received exactly this organisation must
give; its docstring defines each one.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple, TypeVar

from linked_artifacts.events import RUNTIME_RISKS, RuntimeRisk

__all__ = [
    "CATALOGUE",
    "CLUSTERS",
    "ORG",
    "WINDOW",
    "Build",
    "Cluster",
    "DeploymentChange",
    "Image",
    "Manifest",
    "Org",
    "Package",
    "RecordSync",
    "RepoAlert",
    "Repository",
    "Scan",
    "Slot",
    "Vulnerability",
    "build_org",
    "expected_summary",
    "family_of",
    "present",
]

_T = TypeVar("_T")

ORG = "acme"
WINDOW = timedelta(days=30)
JFROG_ORIGIN = "https://acme.jfrog.io"
JFROG_DOCKER_HOST = "acme.jfrog.io"
JFROG_DOCKER_REPO = "docker-prod-local"
GHCR_HOST = "ghcr.io"
DEFAULT_EVENTS = 10_000

Environment = Literal["dev", "staging", "prod"]
Channel = Literal["cloudevents", "kubernetes"]
RecordMode = Literal["cluster", "single"]
RepoKind = Literal["service", "worker", "library"]
Language = Literal["java", "node", "go", "python"]
BaseOs = Literal["debian", "alpine"]
Ecosystem = Literal["deb", "apk", "npm", "maven", "golang", "pypi"]
VulnSeverity = Literal["critical", "high", "medium", "low"]
ScanTool = Literal["trivy", "grype"]
DeploymentStatus = Literal["deployed", "decommissioned"]
Resolution = Literal["fixed", "dismissed"]

# --- canonical events per fact -----------------------------------------------------------------------------
# What the connectors make of each request (the unit tests run the real parsers to hold these to account).
EVENTS_PER_RUN_DELIVERY = 1  # workflow_run: one build event keyed by the run
EVENTS_PER_PROVENANCE = 1  # one build event per subject; every attestation here has one subject
EVENTS_PER_GHCR_MANIFEST = 2  # a storage event plus a build event from the OCI revision label
EVENTS_PER_PACKAGE_FILE = 1  # Artifactory artifact deployed, GitHub Packages file, storage record: one each
EVENTS_PER_RUNNING = 2  # a deployment event plus the storage observation of its image reference
EVENTS_PER_DECOMMISSION = 1
EVENTS_PER_RECORD = 1  # a metadata API deployment record
EVENTS_PER_REPO_ALERT_DELIVERY = 1
EVENTS_PER_LINK = 2  # an index-to-platform link is sent once keyed by each digest


class Cluster(NamedTuple):
    """A Kubernetes cluster, and how its deployments reach the system."""

    name: str
    environment: Environment
    region: str
    channel: Channel  # CloudEvents from a runtime monitor, or Pod lists from an in-cluster agent
    records: RecordMode | None  # the metadata API snapshot posted at the end: cluster bulk, single, or none


# Names follow <cloud>-<environment>-<region>-<n>; aks clusters report through Defender-style CloudEvents,
# eks through a runtime sensor's CloudEvents, gke through an agent that posts Pod lists.
CLUSTERS: tuple[Cluster, ...] = (
    Cluster("aks-dev-weu-1", "dev", "westeurope", "cloudevents", None),
    Cluster("gke-dev-use-1", "dev", "us-east1", "kubernetes", None),
    Cluster("eks-staging-usw2-1", "staging", "us-west-2", "cloudevents", "cluster"),
    Cluster("aks-staging-weu-1", "staging", "westeurope", "cloudevents", None),
    Cluster("aks-prod-weu-1", "prod", "westeurope", "cloudevents", "cluster"),
    Cluster("aks-prod-neu-1", "prod", "northeurope", "cloudevents", "single"),
    Cluster("gke-prod-use-1", "prod", "us-east1", "kubernetes", None),
    Cluster("eks-prod-apse1-1", "prod", "ap-southeast-1", "cloudevents", "cluster"),
)
_BY_ENVIRONMENT: dict[Environment, tuple[Cluster, ...]] = {
    env: tuple(c for c in CLUSTERS if c.environment == env) for env in ("dev", "staging", "prod")
}


class Vulnerability(NamedTuple):
    """One entry of the made-up CVE catalogue."""

    cve: str
    ghsa: str
    ecosystem: Ecosystem
    package: str
    installed: str
    fixed: str
    severity: VulnSeverity
    cvss: float
    vector: str
    epss: float
    percentile: float
    title: str
    prevalence: float  # chance that a repository using the ecosystem is affected


_V98 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
_V91 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:N"
_V90 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:H/A:H"
_V81 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H"
_V78 = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"
_V75 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"
_V72 = "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"
_V65 = "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N"
_V61 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"
_V59 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"
_V55 = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:H"
_V53 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"
_V44 = "CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:H/I:N/A:N"
_V37 = "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:L/I:N/A:N"
_V33 = "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N"


def _vuln(
    number: int,
    ecosystem: Ecosystem,
    package: str,
    versions: tuple[str, str],
    rating: tuple[VulnSeverity, float, str],
    epss: tuple[float, float],
    title: str,
    prevalence: float,
) -> Vulnerability:
    ghsa = _ghsa(number)
    severity, cvss, vector = rating
    return Vulnerability(
        f"CVE-2026-{number}", ghsa, ecosystem, package, *versions, severity, cvss, vector, *epss, title, prevalence
    )


def _ghsa(number: int) -> str:
    # GHSA ids use this 20-letter alphabet in four-letter groups.
    alphabet = "23456789cfghjmpqrvwx"
    digest = hashlib.sha256(f"ghsa:{number}".encode()).digest()
    letters = "".join(alphabet[b % len(alphabet)] for b in digest[:12])
    return f"GHSA-{letters[:4]}-{letters[4:8]}-{letters[8:12]}"


# Made-up CVEs (CVE-2026-1xxxx) on real package names, with a realistic spread: few critical, most medium or
# low; EPSS mostly tiny, high for a few criticals (the ones triage should find first).
CATALOGUE: tuple[Vulnerability, ...] = (
    _vuln(
        10021,
        "deb",
        "libssl3",
        ("3.0.15-1~deb12u1", "3.0.16-1~deb12u1"),
        ("critical", 9.8, _V98),
        (0.72, 0.985),
        "OpenSSL: heap overflow in X.509 name constraint checking",
        0.45,
    ),
    _vuln(
        10022,
        "deb",
        "libc6",
        ("2.36-9+deb12u9", "2.36-9+deb12u10"),
        ("high", 7.8, _V78),
        (0.041, 0.912),
        "glibc: buffer overflow in iconv when converting to ISO-2022-CN-EXT",
        0.5,
    ),
    _vuln(
        10023,
        "deb",
        "zlib1g",
        ("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1+deb12u1"),
        ("high", 7.5, _V75),
        (0.012, 0.78),
        "zlib: out-of-bounds read in inflateGetHeader",
        0.35,
    ),
    _vuln(
        10024,
        "deb",
        "libcurl4",
        ("7.88.1-10+deb12u8", "7.88.1-10+deb12u9"),
        ("medium", 6.5, _V65),
        (0.0031, 0.52),
        "curl: credentials leak on cross-protocol redirect",
        0.4,
    ),
    _vuln(
        10025,
        "deb",
        "libxml2",
        ("2.9.14+dfsg-1.3", "2.9.14+dfsg-1.3~deb12u1"),
        ("medium", 5.3, _V53),
        (0.0018, 0.41),
        "libxml2: use-after-free in xmlValidatePopElement",
        0.3,
    ),
    _vuln(
        10026,
        "deb",
        "tar",
        ("1.34+dfsg-1.2", "1.34+dfsg-1.2+deb12u1"),
        ("low", 3.3, _V33),
        (0.0004, 0.09),
        "tar: stack exhaustion on crafted archive headers",
        0.3,
    ),
    _vuln(
        10027,
        "deb",
        "libgnutls30",
        ("3.7.9-2+deb12u3", "3.7.9-2+deb12u4"),
        ("medium", 5.9, _V59),
        (0.0022, 0.46),
        "GnuTLS: timing side channel in RSA-PSK key exchange",
        0.25,
    ),
    _vuln(
        10031,
        "apk",
        "busybox",
        ("1.36.1-r29", "1.36.1-r30"),
        ("high", 7.2, _V72),
        (0.021, 0.85),
        "BusyBox: command injection in the wget applet",
        0.5,
    ),
    _vuln(
        10032,
        "apk",
        "musl",
        ("1.2.5-r0", "1.2.5-r1"),
        ("medium", 5.5, _V55),
        (0.0009, 0.27),
        "musl: out-of-bounds write in iconv EUC-KR decoder",
        0.4,
    ),
    _vuln(
        10033,
        "apk",
        "libcrypto3",
        ("3.3.2-r0", "3.3.3-r0"),
        ("critical", 9.1, _V91),
        (0.41, 0.972),
        "OpenSSL: remote key recovery through RSA decryption timing",
        0.35,
    ),
    _vuln(
        10034,
        "apk",
        "c-ares",
        ("1.33.1-r0", "1.34.5-r0"),
        ("low", 3.7, _V37),
        (0.0006, 0.14),
        "c-ares: read_answers use-after-free on malformed replies",
        0.25,
    ),
    _vuln(
        10041,
        "npm",
        "lodash",
        ("4.17.20", "4.17.21"),
        ("high", 7.4, _V81),
        (0.083, 0.94),
        "lodash: prototype pollution in zipObjectDeep",
        0.45,
    ),
    _vuln(
        10042,
        "npm",
        "express",
        ("4.19.2", "4.21.1"),
        ("medium", 6.1, _V61),
        (0.0045, 0.61),
        "express: open redirect in res.location with malformed URLs",
        0.45,
    ),
    _vuln(
        10043,
        "npm",
        "jsonwebtoken",
        ("9.0.0", "9.0.3"),
        ("critical", 9.3, _V90),
        (0.63, 0.981),
        "jsonwebtoken: signature bypass through algorithm confusion",
        0.3,
    ),
    _vuln(
        10044,
        "npm",
        "semver",
        ("7.5.1", "7.5.4"),
        ("low", 3.7, _V37),
        (0.0011, 0.31),
        "semver: regular expression denial of service in range parsing",
        0.35,
    ),
    _vuln(
        10045,
        "npm",
        "axios",
        ("1.6.7", "1.7.4"),
        ("high", 7.5, _V75),
        (0.21, 0.962),
        "axios: server-side request forgery through absolute URLs in path",
        0.35,
    ),
    _vuln(
        10051,
        "maven",
        "com.fasterxml.jackson.core:jackson-databind",
        ("2.15.2", "2.15.4"),
        ("critical", 9.8, _V98),
        (0.94, 0.999),
        "jackson-databind: deserialization of untrusted data through polymorphic typing gadgets",
        0.3,
    ),
    _vuln(
        10052,
        "maven",
        "org.springframework:spring-web",
        ("6.0.11", "6.0.23"),
        ("high", 8.1, _V81),
        (0.11, 0.951),
        "Spring Web: path traversal in functional web frameworks",
        0.45,
    ),
    _vuln(
        10053,
        "maven",
        "org.yaml:snakeyaml",
        ("2.0", "2.2"),
        ("medium", 6.5, _V65),
        (0.0052, 0.64),
        "SnakeYAML: stack overflow on deeply nested collections",
        0.4,
    ),
    _vuln(
        10054,
        "maven",
        "io.netty:netty-codec-http",
        ("4.1.100.Final", "4.1.108.Final"),
        ("high", 7.5, _V75),
        (0.33, 0.968),
        "Netty: unbounded memory in HttpPostRequestDecoder",
        0.35,
    ),
    _vuln(
        10055,
        "maven",
        "ch.qos.logback:logback-core",
        ("1.4.11", "1.4.14"),
        ("low", 3.3, _V33),
        (0.0007, 0.19),
        "logback: serialization vulnerability in the receiver component",
        0.3,
    ),
    _vuln(
        10061,
        "golang",
        "golang.org/x/net",
        ("v0.23.0", "v0.33.0"),
        ("high", 7.5, _V75),
        (0.052, 0.92),
        "x/net/http2: excessive CPU from CONTINUATION frame flood",
        0.5,
    ),
    _vuln(
        10062,
        "golang",
        "google.golang.org/grpc",
        ("v1.62.1", "v1.64.1"),
        ("medium", 5.3, _V53),
        (0.0028, 0.49),
        "gRPC-Go: private tokens logged on malformed metadata",
        0.4,
    ),
    _vuln(
        10063,
        "golang",
        "golang.org/x/crypto",
        ("v0.21.0", "v0.31.0"),
        ("critical", 9.1, _V91),
        (0.52, 0.978),
        "x/crypto/ssh: authorization bypass through misused ServerConfig callbacks",
        0.35,
    ),
    _vuln(
        10064,
        "golang",
        "github.com/golang-jwt/jwt/v4",
        ("v4.5.0", "v4.5.2"),
        ("low", 3.7, _V37),
        (0.0009, 0.26),
        "golang-jwt: excessive memory allocation while parsing headers",
        0.3,
    ),
    _vuln(
        10071,
        "pypi",
        "requests",
        ("2.31.0", "2.32.0"),
        ("medium", 5.6, _V53),
        (0.0061, 0.67),
        "Requests: certificate verification stays disabled on a reused session",
        0.5,
    ),
    _vuln(
        10072,
        "pypi",
        "jinja2",
        ("3.1.3", "3.1.5"),
        ("high", 7.2, _V72),
        (0.017, 0.83),
        "Jinja: sandbox escape through the str.format method",
        0.4,
    ),
    _vuln(
        10073,
        "pypi",
        "urllib3",
        ("2.0.7", "2.2.2"),
        ("medium", 4.4, _V44),
        (0.0013, 0.34),
        "urllib3: Proxy-Authorization header kept across origin redirects",
        0.45,
    ),
    _vuln(
        10074,
        "pypi",
        "pillow",
        ("10.2.0", "10.3.0"),
        ("critical", 9.0, _V90),
        (0.12, 0.955),
        "Pillow: buffer overflow in _imagingcms.c",
        0.3,
    ),
    _vuln(
        10075,
        "pypi",
        "cryptography",
        ("42.0.2", "42.0.4"),
        ("low", 3.7, _V37),
        (0.0005, 0.11),
        "cryptography: NULL dereference when loading PKCS7 certificates",
        0.35,
    ),
)
_BY_CVE = {v.cve: v for v in CATALOGUE}
_LANGUAGE_ECOSYSTEM: dict[Language, Ecosystem] = {"java": "maven", "node": "npm", "go": "golang", "python": "pypi"}
_OS_ECOSYSTEM: dict[BaseOs, Ecosystem] = {"debian": "deb", "alpine": "apk"}


# --- the model -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repository:
    """A GitHub repository and the workload or library it ships."""

    index: int
    name: str
    team: str
    owners: tuple[str, ...]
    kind: RepoKind
    language: Language
    base_os: BaseOs | None  # images only
    private: bool  # private repositories attest without a public transparency-log entry
    on_ghcr: bool  # its images are also published to GHCR
    multi_arch: bool
    internet_facing: bool
    sensitive: bool
    critical: bool
    clusters: tuple[Cluster, ...]
    flagship: bool = False  # guaranteed story: internet-exposed in prod with an open critical, high-EPSS CVE

    @property
    def full_name(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def image_name(self) -> str:
        return f"{ORG}/{self.name}"

    @property
    def ecosystems(self) -> tuple[Ecosystem, ...]:
        language = _LANGUAGE_ECOSYSTEM[self.language]
        return (_OS_ECOSYSTEM[self.base_os], language) if self.base_os else (language,)


@dataclass(frozen=True, slots=True)
class Manifest:
    platform: str  # os/architecture
    digest: str
    size: int
    config_digest: str


@dataclass(frozen=True, slots=True)
class Image:
    name: str  # acme/payments-api
    version: str
    index: str | None  # the image index (manifest list) digest of a multi-arch image
    index_size: int
    manifests: tuple[Manifest, ...]
    on_ghcr: bool

    @property
    def subject(self) -> str:
        """The digest a tag resolves to: what runtimes report and what Trivy names."""
        return self.index or self.manifests[0].digest

    @property
    def digests(self) -> tuple[str, ...]:
        return ((self.index,) if self.index else ()) + tuple(m.digest for m in self.manifests)

    @property
    def reference(self) -> str:
        """The image reference with its tag, as a pod spec names it."""
        if self.on_ghcr:
            return f"{GHCR_HOST}/{self.name}:{self.version}"
        return f"{JFROG_DOCKER_HOST}/{JFROG_DOCKER_REPO}/{self.name}:{self.version}"

    @property
    def repository_reference(self) -> str:
        return self.reference.rsplit(":", 1)[0]


@dataclass(frozen=True, slots=True)
class Package:
    ecosystem: Literal["npm", "maven"]
    name: str  # @acme/ui-kit or com.acme:ledger-client
    version: str
    file_name: str
    repository: str  # Artifactory repository key
    path: str  # path inside it
    digest: str
    size: int
    on_github_packages: bool  # npm packages also published to npm.pkg.github.com
    storage_record: bool  # a storage record is posted through the metadata API


@dataclass(frozen=True, slots=True)
class Build:
    """One attempt of a release workflow run; a successful attempt carries the artifact it produced."""

    repository: Repository
    run_id: int
    run_number: int
    attempt: int
    commit: str
    version: str
    started_at: datetime
    completed_at: datetime
    conclusion: Literal["success", "failure"]
    pushed_at: datetime | None = None
    attested_at: datetime | None = None
    image: Image | None = None
    package: Package | None = None
    release_index: int = -1  # position among the repository's releases (-1 for a failed attempt)

    @property
    def digests(self) -> tuple[str, ...]:
        if self.image is not None:
            return self.image.digests
        if self.package is not None:
            return (self.package.digest,)
        return ()

    @property
    def subject(self) -> str | None:
        """The digest its provenance names."""
        if self.image is not None:
            return self.image.subject
        return self.package.digest if self.package is not None else None


@dataclass(frozen=True, slots=True)
class Slot:
    """A deployment slot, named as GitHub recommends: ``{namespace}-{workload}-{container}``."""

    cluster: Cluster
    namespace: str
    workload: str
    container: str = "app"

    @property
    def deployment_name(self) -> str:
        return f"{self.namespace}-{self.workload}-{self.container}"

    @property
    def environment(self) -> Environment:
        return self.cluster.environment


@dataclass(frozen=True, slots=True)
class DeploymentChange:
    """A digest starting to run in a slot, or the slot's workload going away."""

    at: datetime
    slot: Slot
    status: DeploymentStatus
    build: Build  # the release whose image runs (or ran, for a decommission) in the slot
    image: Image  # that release's image
    risks: tuple[RuntimeRisk, ...]
    rollback: bool = False

    @property
    def digest(self) -> str:
        return self.image.subject

    def rolled_back_to(self, at: datetime) -> DeploymentChange:
        """This deployment again at ``at``: a rollback to it."""
        return DeploymentChange(at, self.slot, self.status, self.build, self.image, self.risks, rollback=True)


@dataclass(frozen=True, slots=True)
class Scan:
    """One scanner report: Trivy names the digest the tag resolves to, Grype the platform it scanned."""

    at: datetime
    tool: ScanTool
    build: Build
    image: Image
    manifest: Manifest  # the platform manifest scanned
    findings: tuple[Vulnerability, ...]

    @property
    def subject(self) -> str:
        return self.image.subject if self.tool == "trivy" else self.manifest.digest


@dataclass(frozen=True, slots=True)
class RepoAlert:
    """A Dependabot alert on a repository: created, then perhaps fixed or dismissed."""

    repository: Repository
    number: int
    vulnerability: Vulnerability
    created_at: datetime
    closed_at: datetime | None = None
    resolution: Resolution | None = None

    @property
    def state(self) -> Literal["open", "fixed", "dismissed"]:
        return self.resolution or "open"

    @property
    def deliveries(self) -> int:
        return 1 if self.resolution is None else 2


@dataclass(frozen=True, slots=True)
class RecordSync:
    """A current deployment record posted through the metadata API at the end (event time = receive time)."""

    change: DeploymentChange  # the slot holder's latest deployed change
    mode: RecordMode


@dataclass(frozen=True, slots=True)
class _RepoHistory:
    repository: Repository
    builds: tuple[Build, ...]
    deployments: tuple[DeploymentChange, ...]
    scans: tuple[Scan, ...]
    repo_alerts: tuple[RepoAlert, ...]
    records: tuple[RecordSync, ...]

    def event_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for build in self.builds:
            counts["workflow_run"] += 2 * EVENTS_PER_RUN_DELIVERY  # in_progress and completed
            if build.image is not None:
                image = build.image
                counts["artifactory"] += 1 + (EVENTS_PER_LINK * len(image.manifests) if image.index else 0)
                if image.on_ghcr:
                    counts["ghcr"] += EVENTS_PER_GHCR_MANIFEST * len(image.digests)
            if build.package is not None:
                package = build.package
                counts["artifactory"] += EVENTS_PER_PACKAGE_FILE
                counts["github_packages"] += EVENTS_PER_PACKAGE_FILE if package.on_github_packages else 0
                counts["storage_record"] += EVENTS_PER_PACKAGE_FILE if package.storage_record else 0
            if build.subject is not None:
                counts["provenance"] += EVENTS_PER_PROVENANCE
        for change in self.deployments:
            events = EVENTS_PER_RUNNING if change.status == "deployed" else EVENTS_PER_DECOMMISSION
            counts[change.slot.cluster.channel] += events
        for scan in self.scans:
            links = EVENTS_PER_LINK if scan.tool == "grype" and scan.image.index else 0
            counts[scan.tool] += len(scan.findings) + links
        counts["dependabot"] += sum(a.deliveries * EVENTS_PER_REPO_ALERT_DELIVERY for a in self.repo_alerts)
        counts["metadata_api"] += EVENTS_PER_RECORD * len(self.records)
        return dict(counts)


@dataclass(frozen=True)
class Org:
    """The whole demo organisation. Facts are sorted by time within each tuple."""

    seed: int
    now: datetime
    target_events: int
    repositories: tuple[Repository, ...]
    builds: tuple[Build, ...]
    deployments: tuple[DeploymentChange, ...]
    scans: tuple[Scan, ...]
    repo_alerts: tuple[RepoAlert, ...]
    records: tuple[RecordSync, ...]
    counts: dict[str, int]  # canonical events by fact kind

    @property
    def start(self) -> datetime:
        return self.now - WINDOW

    @property
    def expected_events(self) -> int:
        return sum(self.counts.values())

    @property
    def teams(self) -> tuple[str, ...]:
        return tuple(sorted({r.team for r in self.repositories}))

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(b.image for b in self.builds if b.image is not None)

    @property
    def packages(self) -> tuple[Package, ...]:
        return tuple(b.package for b in self.builds if b.package is not None)


# --- building it ---------------------------------------------------------------------------------------------


def build_org(*, seed: int, now: datetime, target_events: int = DEFAULT_EVENTS) -> Org:
    """The organisation for ``seed`` whose events add up to about ``target_events``, ending at ``now``."""
    if target_events < 1:
        raise ValueError("target_events must be at least 1")
    now = now.astimezone(UTC).replace(microsecond=0)
    histories: list[_RepoHistory] = []
    counts: dict[str, int] = defaultdict(int)
    taken: set[str] = set()
    total = 0
    while total < target_events:
        index = len(histories)
        # One stream per repository: adding repositories never changes the earlier ones.
        rng = random.Random(f"{seed}:repository:{index}")  # noqa: S311 - demo data, not security
        repository = _profile(rng, index, taken)
        taken.add(repository.name)
        history = _History(seed=seed, now=now, repository=repository, rng=rng).build()
        histories.append(history)
        for kind, value in history.event_counts().items():
            counts[kind] += value
            total += value
    return Org(
        seed=seed,
        now=now,
        target_events=target_events,
        repositories=tuple(h.repository for h in histories),
        builds=_sorted((b for h in histories for b in h.builds), key=lambda b: (b.started_at, b.run_id)),
        deployments=_sorted(
            (d for h in histories for d in h.deployments),
            key=lambda d: (d.at, d.slot.cluster.name, d.slot.deployment_name),
        ),
        scans=_sorted((s for h in histories for s in h.scans), key=lambda s: (s.at, s.subject, s.tool)),
        repo_alerts=_sorted(
            (a for h in histories for a in h.repo_alerts), key=lambda a: (a.created_at, a.repository.name, a.number)
        ),
        records=tuple(r for h in histories for r in h.records),
        counts=dict(sorted(counts.items())),
    )


def present(value: _T | None, what: str) -> _T:
    """``value``, which the model guarantees to be set here; a ValueError names the broken guarantee."""
    if value is None:
        raise ValueError(f"demo model: {what} is missing")
    return value


def _sorted(items: Iterable[Any], *, key: Any) -> tuple[Any, ...]:
    return tuple(sorted(items, key=key))


def digest_of(seed: int, *parts: object) -> str:
    """A sha256 digest derived from the seed and what the artifact is (name, version, platform)."""
    text = "|".join(str(p) for p in (seed, *parts))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _hex(seed: int, *parts: object, length: int = 40) -> str:
    return digest_of(seed, *parts)[7 : 7 + length]


# Teams with their code owners (GitHub logins), and the words repository names are made of.
_TEAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("payments", ("mhernandez", "akowalski")),
    ("identity", ("jnakamura", "sokafor")),
    ("web", ("lmartin", "ppatel")),
    ("platform", ("dkim", "ebrown")),
    ("data", ("rsingh", "cmuller")),
    ("search", ("tnguyen", "gdubois")),
    ("checkout", ("fgarcia", "hjohansson")),
    ("notifications", ("bwilson", "nhassan")),
    ("catalog", ("yli", "oadeyemi")),
    ("billing", ("mrossi", "ilarsen")),
    ("ml", ("vpetrov", "azhang")),
    ("security", ("kobrien", "rcosta")),
)
_OWNERS = dict(_TEAMS)
_SENSITIVE_TEAMS = frozenset({"payments", "identity", "billing"})
_DOMAINS = (
    "orders",
    "invoices",
    "accounts",
    "carts",
    "ledger",
    "shipping",
    "inventory",
    "pricing",
    "recommendations",
    "alerts",
    "search",
    "reports",
    "audit",
    "sessions",
    "tokens",
    "profiles",
    "media",
    "catalog",
    "loyalty",
    "fraud",
    "payouts",
    "subscriptions",
    "reviews",
    "coupons",
    "returns",
    "tax",
    "fx",
    "kyc",
    "documents",
    "webhooks",
)
_SENSITIVE_DOMAINS = frozenset({"accounts", "payouts", "profiles", "invoices", "sessions", "kyc", "tokens", "fraud"})
_CRITICAL_DOMAINS = frozenset({"ledger", "tokens", "sessions", "kyc", "payouts"})
_SUFFIXES: dict[RepoKind, tuple[str, ...]] = {
    "service": ("api", "service", "gateway", "web", "portal", "backend"),
    "worker": ("worker", "consumer", "indexer", "scheduler", "sync", "exporter"),
    "library": ("client", "sdk", "kit", "utils", "schemas"),
}
_FACING_SUFFIXES = frozenset({"api", "gateway", "web", "portal"})


class _Archetype(NamedTuple):
    name: str
    team: str
    kind: RepoKind
    language: Language
    base_os: BaseOs | None
    internet_facing: bool
    prod_clusters: int
    forced: tuple[str, ...] = ()  # CVEs it is affected by and never fixes within the window


# The first repositories are fixed so that even a small demo tells every story: a flagship payments service
# with an exploitable critical CVE on the internet in prod, a storefront, an identity service, npm and Maven
# libraries, and single-platform workers (one of which is retired).
_ARCHETYPES: tuple[_Archetype, ...] = (
    _Archetype("payments-api", "payments", "service", "java", "debian", True, 3, ("CVE-2026-10051",)),
    _Archetype("web-storefront", "web", "service", "node", "alpine", True, 2, ("CVE-2026-10043",)),
    _Archetype("identity-service", "identity", "service", "go", "debian", True, 2),
    _Archetype("ui-kit", "web", "library", "node", None, False, 0),
    _Archetype("ledger-worker", "payments", "worker", "java", "debian", False, 1),
    _Archetype("ledger-client", "payments", "library", "java", None, False, 0),
    _Archetype("report-exporter", "data", "worker", "python", "debian", False, 1),
)
_RETIRED_ARCHETYPE = "report-exporter"
_PARTLY_DECOMMISSIONED_ARCHETYPE = "identity-service"


def _profile(rng: random.Random, index: int, taken: set[str]) -> Repository:
    if index < len(_ARCHETYPES):
        a = _ARCHETYPES[index]
        clusters = _clusters(rng, a.kind, a.prod_clusters)
        return Repository(
            index=index,
            name=a.name,
            team=a.team,
            owners=_OWNERS[a.team],
            kind=a.kind,
            language=a.language,
            base_os=a.base_os,
            private=a.team != "web",
            on_ghcr=a.kind != "worker",
            multi_arch=a.kind == "service",
            internet_facing=a.internet_facing,
            sensitive=a.team in _SENSITIVE_TEAMS,
            critical=a.name.startswith("ledger") or a.name.startswith("payments"),
            clusters=clusters,
            flagship=index == 0,
        )
    team, owners = rng.choice(_TEAMS)
    kind: RepoKind = rng.choices(("service", "worker", "library"), weights=(65, 15, 20))[0]
    language: Language = rng.choice(("java", "node") if kind == "library" else ("java", "node", "go", "python"))
    domain, suffix = rng.choice(_DOMAINS), rng.choice(_SUFFIXES[kind])
    name = f"{domain}-{suffix}"
    serial = 2
    while name in taken:
        name, serial = f"{domain}-{suffix}-{serial}", serial + 1
    base_os: BaseOs | None = None
    if kind != "library":
        base_os = "alpine" if language in ("node", "go") and rng.random() < 0.5 else "debian"
    facing = kind == "service" and rng.random() < (0.85 if suffix in _FACING_SUFFIXES else 0.1)
    sensitive = team in _SENSITIVE_TEAMS or domain in _SENSITIVE_DOMAINS or rng.random() < 0.1
    critical = domain in _CRITICAL_DOMAINS or suffix == "gateway" or rng.random() < 0.08
    prod = 0
    if kind == "service":
        prod = rng.choice((2, 3)) if facing else rng.choice((1, 2))
    elif kind == "worker":
        prod = 1
    return Repository(
        index=index,
        name=name,
        team=team,
        owners=owners,
        kind=kind,
        language=language,
        base_os=base_os,
        private=rng.random() < 0.7,
        on_ghcr=rng.random() < 0.6,
        multi_arch=kind == "service" and rng.random() < 0.85,
        internet_facing=facing,
        sensitive=sensitive,
        critical=critical,
        clusters=_clusters(rng, kind, prod),
    )


def _clusters(rng: random.Random, kind: RepoKind, prod: int) -> tuple[Cluster, ...]:
    if kind == "library":
        return ()
    chosen = [rng.choice(_BY_ENVIRONMENT["dev"])]
    if kind == "service":
        chosen.append(rng.choice(_BY_ENVIRONMENT["staging"]))
    chosen += rng.sample(_BY_ENVIRONMENT["prod"], prod)
    return tuple(chosen)


def _risks(rng: random.Random, repository: Repository, env: Environment) -> tuple[RuntimeRisk, ...]:
    """Runtime risks of a repository's workload in one environment: fixed for the slot's lifetime."""
    if repository.internet_facing:
        exposed = {"prod": 0.92, "staging": 0.3, "dev": 0.05}[env]
    else:
        exposed = {"prod": 0.04, "staging": 0.02, "dev": 0.0}[env]
    if repository.flagship and env == "prod":
        exposed = 1.0
    risks: set[str] = set()
    if rng.random() < exposed:
        risks.add("internet-exposed")
    if repository.sensitive and env != "dev":
        risks.add("sensitive-data")
    if repository.critical and env == "prod":
        risks.add("critical-resource")
    if env != "dev" and rng.random() < 0.08:
        risks.add("lateral-movement")
    return tuple(r for r in RUNTIME_RISKS if r in risks)


def _business_time(rng: random.Random, start: datetime, span: timedelta) -> datetime:
    """A moment in ``[start, start + span)``, most often in working hours, to the second."""
    day = start + timedelta(days=rng.randrange(max(1, span.days)))
    hour = rng.choices(range(24), weights=[1] * 7 + [6] * 11 + [2] * 6)[0]
    moment = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
    return min(max(moment, start), start + span - timedelta(seconds=1))


class _History:
    """The 30 days of one repository, drawn from its own random stream in a fixed order."""

    def __init__(self, *, seed: int, now: datetime, repository: Repository, rng: random.Random) -> None:
        self.seed = seed
        self.now = now
        self.start = now - WINDOW
        self.repository = repository
        self.rng = rng
        self.slot_risks = {c.name: _risks(rng, repository, c.environment) for c in repository.clusters}

    def build(self) -> _RepoHistory:
        builds = self._builds()
        releases = [b for b in builds if b.conclusion == "success"]
        affected = self._affected(len(releases))
        deployments = self._deployments(releases)
        scans = self._trivy(releases, affected) + self._grype(releases, affected, deployments)
        return _RepoHistory(
            repository=self.repository,
            builds=tuple(builds),
            deployments=tuple(deployments),
            scans=tuple(scans),
            repo_alerts=tuple(self._repo_alerts(releases, affected)),
            records=tuple(self._records(deployments)),
        )

    # -- releases ------------------------------------------------------------------------------------------

    def _builds(self) -> list[Build]:
        rng, repo = self.rng, self.repository
        low, high = {"service": (5, 14), "worker": (3, 8), "library": (2, 6)}[repo.kind]
        count = 12 if repo.flagship else rng.randint(low, high)
        # Releases start two hours into the window and end an hour before now, so every run completes.
        span = WINDOW - timedelta(hours=3)
        times = sorted({_business_time(rng, self.start + timedelta(hours=2), span) for _ in range(count)})
        major, minor, patch = rng.randint(1, 4), rng.randint(0, 30), 0
        run_number = rng.randint(100, 2000)
        builds: list[Build] = []
        for release_index, started in enumerate(times):
            if rng.random() < 0.2:
                minor, patch = minor + 1, 0
            else:
                patch += 1
            version = f"{major}.{minor}.{patch}"
            run_number += rng.randint(1, 6)  # other workflows and PR runs take numbers in between
            run_id = 10_000_000_000 + repo.index * 100_000 + run_number
            commit = _hex(self.seed, repo.full_name, version, "commit")
            attempt = 1
            if rng.random() < 0.08:
                # A flaky first attempt fails; the re-run (attempt 2) releases.
                failed_start = started - timedelta(minutes=rng.randint(15, 40))
                builds.append(
                    Build(
                        repository=repo,
                        run_id=run_id,
                        run_number=run_number,
                        attempt=1,
                        commit=commit,
                        version=version,
                        started_at=failed_start,
                        completed_at=failed_start + timedelta(minutes=rng.randint(2, 9)),
                        conclusion="failure",
                    )
                )
                attempt = 2
            pushed = started + timedelta(minutes=rng.randint(4, 9), seconds=rng.randrange(60))
            builds.append(
                Build(
                    repository=repo,
                    run_id=run_id,
                    run_number=run_number,
                    attempt=attempt,
                    commit=commit,
                    version=version,
                    started_at=started,
                    completed_at=pushed + timedelta(minutes=rng.randint(1, 3), seconds=rng.randrange(60)),
                    conclusion="success",
                    pushed_at=pushed,
                    attested_at=pushed + timedelta(seconds=rng.randint(20, 50)),
                    image=self._image(version) if repo.kind != "library" else None,
                    package=self._package(version) if repo.kind == "library" else None,
                    release_index=release_index,
                )
            )
        return builds

    def _image(self, version: str) -> Image:
        repo, seed = self.repository, self.seed
        platforms = ("linux/amd64", "linux/arm64") if repo.multi_arch else ("linux/amd64",)
        manifests = tuple(
            Manifest(
                platform=platform,
                digest=digest_of(seed, repo.image_name, version, platform),
                size=1_400 + int(_hex(seed, repo.image_name, version, platform, "size", length=3), 16),
                config_digest=digest_of(seed, repo.image_name, version, platform, "config"),
            )
            for platform in platforms
        )
        index = digest_of(seed, repo.image_name, version, "index") if repo.multi_arch else None
        return Image(
            name=repo.image_name,
            version=version,
            index=index,
            index_size=1_100 + 120 * len(platforms),
            manifests=manifests,
            on_ghcr=repo.on_ghcr,
        )

    def _package(self, version: str) -> Package:
        repo = self.repository
        size = 20_000 + int(_hex(self.seed, repo.name, version, "size", length=5), 16)
        digest = digest_of(self.seed, repo.name, version, "package")
        if repo.language == "node":
            return Package(
                ecosystem="npm",
                name=f"@{ORG}/{repo.name}",
                version=version,
                file_name=f"{repo.name}-{version}.tgz",
                repository="npm-local",
                path=f"@{ORG}/{repo.name}/-/{repo.name}-{version}.tgz",
                digest=digest,
                size=size,
                on_github_packages=True,
                storage_record=False,
            )
        return Package(
            ecosystem="maven",
            name=f"com.{ORG}:{repo.name}",
            version=version,
            file_name=f"{repo.name}-{version}.jar",
            repository="libs-release-local",
            path=f"com/{ORG}/{repo.name}/{version}/{repo.name}-{version}.jar",
            digest=digest,
            size=size,
            on_github_packages=False,
            storage_record=True,
        )

    def _affected(self, releases: int) -> dict[Vulnerability, int | None]:
        """Each vulnerability the repository carries -> the release that fixes it (None: not in the window)."""
        rng, repo = self.rng, self.repository
        archetype = next((a for a in _ARCHETYPES if a.name == repo.name and repo.index < len(_ARCHETYPES)), None)
        forced = {_BY_CVE[c] for c in archetype.forced} if archetype else set()
        affected: dict[Vulnerability, int | None] = {}
        for vuln in CATALOGUE:
            if vuln.ecosystem not in repo.ecosystems:
                continue
            hit = rng.random() < vuln.prevalence
            fix_roll = rng.random()
            fix_at = rng.randint(1, max(1, releases))
            if vuln in forced:
                affected[vuln] = None
            elif hit:
                # About two thirds get fixed by a later release (a dependency or base-image bump).
                affected[vuln] = fix_at if fix_roll < 0.65 and fix_at < releases else None
        return affected

    # -- deployments ------------------------------------------------------------------------------------

    def _deployments(self, releases: list[Build]) -> list[DeploymentChange]:
        rng, repo = self.rng, self.repository
        if repo.kind == "library":
            return []
        slots = {c.name: Slot(c, repo.team, repo.name) for c in repo.clusters}
        planned: list[DeploymentChange] = []

        def deploy(build: Build, image: Image, cluster: Cluster, at: datetime, *, rollback: bool = False) -> None:
            if at <= self.now - timedelta(minutes=1):
                risks = self.slot_risks[cluster.name]
                planned.append(DeploymentChange(at, slots[cluster.name], "deployed", build, image, risks, rollback))

        staging_p = 0.6 if repo.kind == "service" else 0.0
        if repo.flagship:
            staging_p = 1.0  # the flagship's story needs it in prod whatever the seed
        for build in releases:
            image = present(build.image, "the image of a released service")
            dev_at = present(build.pushed_at, "a release's push time") + timedelta(
                minutes=rng.randint(8, 20), seconds=rng.randrange(60)
            )
            staging_roll, prod_roll = rng.random(), rng.random()
            staging_delay = timedelta(minutes=rng.randint(60, 480))
            prod_delay = timedelta(minutes=rng.randint(12 * 60, 60 * 60))
            staggers = [timedelta(minutes=rng.randint(3, 45), seconds=rng.randrange(60)) for _ in repo.clusters]
            promoted_at = dev_at
            for cluster, stagger in zip(repo.clusters, staggers, strict=True):
                if cluster.environment == "dev":
                    deploy(build, image, cluster, dev_at)
                elif cluster.environment == "staging" and staging_roll < staging_p:
                    promoted_at = dev_at + staging_delay
                    deploy(build, image, cluster, promoted_at)
                elif cluster.environment == "prod" and self._reaches_prod(repo, staging_roll < staging_p, prod_roll):
                    deploy(build, image, cluster, promoted_at + prod_delay + stagger)
        changes = self._settle(planned)
        changes += self._decommissions(changes)
        return sorted(changes, key=lambda c: (c.at, c.slot.cluster.name))

    @staticmethod
    def _reaches_prod(repo: Repository, staged: bool, prod_roll: float) -> bool:
        if repo.kind == "worker":
            return prod_roll < 0.5  # workers skip staging
        return staged and prod_roll < 0.65

    def _settle(self, planned: list[DeploymentChange]) -> list[DeploymentChange]:
        """Per slot: never roll an older release over a newer one, and roll back a few prod rollouts."""
        rng = self.rng
        by_slot: dict[str, list[DeploymentChange]] = defaultdict(list)
        for change in sorted(planned, key=lambda c: (c.at, c.build.release_index)):
            by_slot[change.slot.cluster.name].append(change)
        settled: list[DeploymentChange] = []
        for cluster_name in sorted(by_slot):
            kept: list[DeploymentChange] = []
            for change in by_slot[cluster_name]:
                if kept and change.build.release_index <= kept[-1].build.release_index:
                    continue  # a slow promotion overtaken by a newer release is not rolled out
                kept.append(change)
            rollbacks: list[DeploymentChange] = []
            for position, change in enumerate(kept):
                if change.slot.environment != "prod" or position == 0 or rng.random() >= 0.06:
                    continue
                at = change.at + timedelta(minutes=rng.randint(20, 90))
                following = kept[position + 1].at if position + 1 < len(kept) else self.now
                if at < following - timedelta(minutes=5):
                    previous = kept[position - 1]
                    rollbacks.append(previous.rolled_back_to(at))
            settled += kept + rollbacks
        return settled

    def _decommissions(self, changes: list[DeploymentChange]) -> list[DeploymentChange]:
        """A few workloads leave a cluster (or retire everywhere) in the last days of the window."""
        rng, repo = self.rng, self.repository
        retire_all = repo.name == _RETIRED_ARCHETYPE or (repo.index >= len(_ARCHETYPES) and rng.random() < 0.03)
        leave_one = repo.name == _PARTLY_DECOMMISSIONED_ARCHETYPE or (
            repo.index >= len(_ARCHETYPES) and repo.kind != "library" and rng.random() < 0.1
        )
        holders: dict[str, DeploymentChange] = {}
        for change in sorted(changes, key=lambda c: c.at):
            holders[change.slot.cluster.name] = change
        if not holders or repo.flagship:
            return []
        if retire_all:
            targets = sorted(holders)
        elif leave_one:
            non_prod = sorted(n for n, h in holders.items() if h.slot.environment != "prod")
            targets = [rng.choice(non_prod or sorted(holders))]
        else:
            return []
        last = max(h.at for h in holders.values())
        when = max(last + timedelta(hours=2), self.now - timedelta(hours=rng.randint(6, 96)))
        out = []
        for offset, name in enumerate(targets):
            at = when + timedelta(minutes=3 * offset)
            if at < self.now - timedelta(minutes=5):
                holder = holders[name]
                out.append(DeploymentChange(at, holder.slot, "decommissioned", holder.build, holder.image, ()))
        return out

    # -- scans and alerts --------------------------------------------------------------------------------

    def _findings(self, build: Build, affected: dict[Vulnerability, int | None]) -> tuple[Vulnerability, ...]:
        return tuple(v for v, fix in affected.items() if fix is None or build.release_index < fix)

    def _trivy(self, releases: list[Build], affected: dict[Vulnerability, int | None]) -> list[Scan]:
        # CI scans every pushed image; Trivy resolves a multi-arch tag to amd64.
        scans = []
        for build in releases:
            if build.image is not None and build.pushed_at is not None:
                at = build.pushed_at + timedelta(minutes=2, seconds=self.rng.randrange(60))
                image = build.image
                scans.append(Scan(at, "trivy", build, image, image.manifests[0], self._findings(build, affected)))
        return scans

    def _grype(
        self, releases: list[Build], affected: dict[Vulnerability, int | None], changes: list[DeploymentChange]
    ) -> list[Scan]:
        """A scheduled Grype scan an hour after an image reaches prod, then weekly while it runs there."""
        prod = [c for c in changes if c.slot.environment == "prod"]
        scans = []
        for build in releases:
            first = min((c.at for c in prod if c.build is build and c.status == "deployed"), default=None)
            if first is None or build.image is None:
                continue
            at, turn = first + timedelta(hours=1), 0
            while at <= self.now:
                if _runs_in(prod, build, at):
                    manifest = build.image.manifests[turn % len(build.image.manifests)]
                    scans.append(Scan(at, "grype", build, build.image, manifest, self._findings(build, affected)))
                    turn += 1
                at += timedelta(days=7)
        return scans

    def _repo_alerts(self, releases: list[Build], affected: dict[Vulnerability, int | None]) -> list[RepoAlert]:
        rng, repo = self.rng, self.repository
        alerts = []
        number = rng.randint(1, 60)
        language = _LANGUAGE_ECOSYSTEM[repo.language]
        for vuln, fix in affected.items():
            if vuln.ecosystem != language:
                continue  # Dependabot reads dependency manifests, not the base image
            created = self.start + timedelta(hours=rng.randint(1, 72), seconds=rng.randrange(3600))
            dismiss_roll, dismiss_after = rng.random(), timedelta(hours=rng.randint(2, 200))
            closed_at: datetime | None = None
            resolution: Resolution | None = None
            if fix is not None and releases[fix].pushed_at is not None:
                closed_at, resolution = releases[fix].pushed_at, "fixed"
            elif dismiss_roll < 0.15 and created + dismiss_after < self.now and not repo.flagship:
                closed_at, resolution = created + dismiss_after, "dismissed"
            if closed_at is not None and closed_at <= created:
                closed_at = created + timedelta(minutes=5)
            alerts.append(RepoAlert(repo, number, vuln, created, closed_at, resolution))
            number += rng.randint(1, 4)
        return alerts

    def _records(self, changes: list[DeploymentChange]) -> list[RecordSync]:
        """The current deployment records the tracker posts at the end, for clusters that have one."""
        final: dict[str, DeploymentChange] = {}
        for change in sorted(changes, key=lambda c: (c.at, c.status == "decommissioned")):
            final[change.slot.cluster.name] = change
        records = []
        for name in sorted(final):
            change = final[name]
            mode = change.slot.cluster.records
            if mode is not None and change.status == "deployed":
                records.append(RecordSync(_latest_deployed(changes, change), mode))
        return records


def _runs_in(changes: Sequence[DeploymentChange], build: Build, at: datetime) -> bool:
    """Whether ``build`` holds at least one of the slots in ``changes`` at ``at``."""
    holders: dict[str, DeploymentChange] = {}
    for change in changes:
        if change.at <= at:
            current = holders.get(change.slot.cluster.name)
            if current is None or change.at >= current.at:
                holders[change.slot.cluster.name] = change
    return any(c.build is build and c.status == "deployed" for c in holders.values())


def _latest_deployed(changes: Sequence[DeploymentChange], holder: DeploymentChange) -> DeploymentChange:
    mine = [c for c in changes if c.slot == holder.slot and c.build is holder.build and c.status == "deployed"]
    return max(mine, key=lambda c: c.at)


# --- known answers -------------------------------------------------------------------------------------------


def family_of(org: Org) -> dict[str, str]:
    """Every image and package digest -> its family root: the index for a multi-arch image's digests,
    the digest itself otherwise."""
    families: dict[str, str] = {}
    for build in org.builds:
        root = build.subject
        for digest in build.digests:
            families[digest] = root or digest
    return families


class _SlotEnd(NamedTuple):
    holder: DeploymentChange  # the holder's latest deployed change
    active: bool
    members: frozenset[str]


def _slot_ends(org: Org) -> dict[tuple[str, str], _SlotEnd]:
    by_slot: dict[tuple[str, str], list[DeploymentChange]] = defaultdict(list)
    for change in org.deployments:
        by_slot[(change.slot.cluster.name, change.slot.deployment_name)].append(change)
    ends = {}
    for key, changes in by_slot.items():
        # Same order the system uses: event time, then decommissioned after deployed at the same instant.
        ordered = sorted(changes, key=lambda c: (c.at, c.status == "decommissioned"))
        deployed = [c for c in ordered if c.status == "deployed"]
        ends[key] = _SlotEnd(deployed[-1], ordered[-1].status == "deployed", frozenset(c.digest for c in deployed))
    return ends


class _Alert(NamedTuple):
    identity: tuple[str, ...]
    cve: str
    severity: VulnSeverity
    open: bool
    families: frozenset[str]


def _alerts(org: Org, families: dict[str, str]) -> list[_Alert]:
    alerts: dict[tuple[str, ...], _Alert] = {}
    for scan in org.scans:
        for vuln in scan.findings:
            identity: tuple[str, ...] = (scan.tool, scan.subject, vuln.cve)
            alerts[identity] = _Alert(identity, vuln.cve, vuln.severity, True, frozenset({families[scan.subject]}))
    built_from: dict[str, set[str]] = defaultdict(set)
    for build in org.builds:
        if build.subject is not None:
            built_from[build.repository.full_name].add(families[build.subject])
    for alert in org.repo_alerts:
        identity = ("dependabot", alert.repository.full_name, str(alert.number))
        alerts[identity] = _Alert(
            identity,
            alert.vulnerability.cve,
            alert.vulnerability.severity,
            alert.state == "open",
            frozenset(built_from[alert.repository.full_name]),
        )
    return list(alerts.values())


def expected_summary(org: Org) -> dict[str, Any]:
    """What a fresh system that received exactly ``org`` must answer, computed from the model alone.

    Terms:

    - *family*: an image index together with its platform manifests; a single-platform image or a package
      is a family of one. An alert on any digest of a family applies to the family.
    - *slot*: (logical environment, physical environment, cluster, deployment_name). Its *holder* is the
      digest with the latest ``deployed`` change in it (event time, then decommissioned after deployed at
      the same instant). A slot is *active* when its latest change is ``deployed``, i.e. the holder's latest
      deployment was not followed by a decommission (the holder's own, or one of the whole slot). A
      deployment of a digest is *active* when its slot is active and that digest is the holder: a digest
      whose slot was taken over by another digest (a newer release, or a rollback) is *superseded*.
    - *alert*: one finding, identified as the system identifies it: (scanner, subject digest,
      vulnerability) for Trivy and Grype, (repository, alert number) for Dependabot. Every scanner finding
      is open; a Dependabot alert is open unless its last webhook fixed or dismissed it. An alert applies to
      the family of its subject digest; a Dependabot alert applies to every family built from its
      repository (every released artifact here has provenance naming its repository). Through the
      index-to-platform links, an alert on a platform digest reaches its index.

    Keys:

    - ``events``: canonical events the connectors accept for the whole org (metadata API records included).
    - ``events_by_kind``: the same by fact kind (``Org.counts``).
    - ``repositories``, ``teams``, ``clusters``: counts.
    - ``workflow_runs``: run attempts (each sends ``in_progress`` and ``completed``); ``releases``: successful
      attempts, one artifact each.
    - ``image_digests``: distinct image digests (indexes, platform manifests, single-platform manifests).
    - ``index_digests``, ``platform_digests`` (manifests under an index), ``single_platform_digests``,
      ``package_digests``; ``digests``: all distinct artifact digests.
    - ``links``: index-to-platform pairs.
    - ``slots``: distinct slots that ever held a digest; ``active_slots``; ``active_slots_by_environment``;
      ``active_prod_slots``; ``decommissioned_slots`` (latest change is a decommission).
    - ``superseded_deployments``: (slot, digest) deployments that ended because another digest took the slot.
    - ``deployed_digests``: sorted digests that hold an active slot (the index of a multi-arch image).
    - ``internet_exposed_prod_digests``: sorted digests holding an active prod slot whose runtime risks
      include ``internet-exposed``.
    - ``alerts``: distinct alerts by tool (``trivy``, ``grype``, ``dependabot``); ``open_alerts``.
    - ``open_alerts_deployed``: open alerts that apply to a family with an active deployment anywhere
      (``is:open has:deployment``).
    - ``open_critical_alerts_internet_exposed_prod``: open alerts of severity critical that apply to a family
      holding an active prod slot whose own risks include ``internet-exposed`` (the same slot).
    - ``open_critical_alerts_matching_filter``: open critical alerts for which the families they apply to,
      taken together, have an active deployment in ``prod`` and an active deployment (possibly another one)
      with ``internet-exposed``: GitHub's per-term semantics of
      ``is:open severity:critical environment:prod runtime-risk:internet-exposed``.
    - ``critical_cves_internet_exposed_prod``: sorted CVE ids of the alerts counted in
      ``open_critical_alerts_internet_exposed_prod``.
    """
    families = family_of(org)
    images = org.images
    index_digests = {i.index for i in images if i.index}
    platform_digests = {m.digest for i in images if i.index for m in i.manifests}
    single = {i.manifests[0].digest for i in images if not i.index}
    package_digests = {p.digest for p in org.packages}
    ends = _slot_ends(org)
    active = {key: end for key, end in ends.items() if end.active}
    by_env: dict[str, int] = {"dev": 0, "staging": 0, "prod": 0}
    family_envs: dict[str, set[str]] = defaultdict(set)
    family_risks: dict[str, set[str]] = defaultdict(set)
    exposed_prod_families: set[str] = set()
    for end in active.values():
        env = end.holder.slot.environment
        by_env[env] += 1
        family = families[end.holder.digest]
        family_envs[family].add(env)
        family_risks[family].update(end.holder.risks)
        if env == "prod" and "internet-exposed" in end.holder.risks:
            exposed_prod_families.add(family)
    alerts = _alerts(org, families)
    open_alerts = [a for a in alerts if a.open]
    open_critical = [a for a in open_alerts if a.severity == "critical"]
    exposed_prod = [a for a in open_critical if a.families & exposed_prod_families]

    def matches_filter(alert: _Alert) -> bool:
        envs = set().union(*(family_envs[f] for f in alert.families)) if alert.families else set()
        risks = set().union(*(family_risks[f] for f in alert.families)) if alert.families else set()
        return "prod" in envs and "internet-exposed" in risks

    by_tool: dict[str, int] = defaultdict(int)
    for alert in alerts:
        by_tool[alert.identity[0]] += 1
    return {
        "events": org.expected_events,
        "events_by_kind": dict(org.counts),
        "repositories": len(org.repositories),
        "teams": len(org.teams),
        "clusters": len({c.slot.cluster.name for c in org.deployments}),
        "workflow_runs": len(org.builds),
        "releases": sum(1 for b in org.builds if b.conclusion == "success"),
        "image_digests": len(index_digests | platform_digests | single),
        "index_digests": len(index_digests),
        "platform_digests": len(platform_digests),
        "single_platform_digests": len(single),
        "package_digests": len(package_digests),
        "digests": len(index_digests | platform_digests | single | package_digests),
        "links": sum(len(i.manifests) for i in images if i.index),
        "slots": len(ends),
        "active_slots": len(active),
        "active_slots_by_environment": by_env,
        "active_prod_slots": by_env["prod"],
        "decommissioned_slots": len(ends) - len(active),
        "superseded_deployments": sum(len(end.members) - 1 for end in ends.values()),
        "deployed_digests": sorted({end.holder.digest for end in active.values()}),
        "internet_exposed_prod_digests": sorted(
            {
                end.holder.digest
                for end in active.values()
                if end.holder.slot.environment == "prod" and "internet-exposed" in end.holder.risks
            }
        ),
        "alerts": dict(sorted(by_tool.items())),
        "open_alerts": len(open_alerts),
        "open_alerts_deployed": sum(1 for a in open_alerts if any(f in family_envs for f in a.families)),
        "open_critical_alerts_internet_exposed_prod": len(exposed_prod),
        "open_critical_alerts_matching_filter": sum(1 for a in open_critical if matches_filter(a)),
        "critical_cves_internet_exposed_prod": sorted({a.cve for a in exposed_prod}),
    }
