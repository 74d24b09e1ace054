"""Small builders for ArtifactEvents in history tests: each names only what the test is about."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from linked_artifacts.events import (
    AlertBody,
    ArtifactEvent,
    BuildBody,
    DeploymentBody,
    LinkBody,
    StorageBody,
    repo_key,
    slot_key,
)

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def digest(label: str) -> str:
    """A real-looking sha256 digest derived from a label, so tests read as words."""
    return "sha256:" + hashlib.sha256(label.encode()).hexdigest()


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Events:
    """Makes events with unique ids and increasing ingest times."""

    def __init__(self) -> None:
        self.count = 0

    def _event(self, *, key: str, kind: str, minute: float, digest_: str | None, **body: Any) -> ArtifactEvent:
        self.count += 1
        return ArtifactEvent.model_validate(
            {
                "event_id": f"ev-{self.count:06d}",
                "key": key,
                "kind": kind,
                "source": "demo",
                "digest": digest_,
                "event_time": at(minute),
                "ingest_time": at(minute) + timedelta(seconds=5),
                "delivery_id": f"delivery-{self.count:06d}",
                kind: body,
            }
        )

    def storage(
        self,
        d: str,
        *,
        minute: float = 0,
        repository: str = "docker-local",
        registry: str = "jfrog-artifactory",
        registry_url: str = "https://acme.jfrog.io/artifactory/",
        path: str | None = "payments/1.0",
        status: str = "active",
        action: str = "pushed",
        tags: list[str] | None = None,
        previous_repository: str | None = None,
        previous_path: str | None = None,
        github_repository: str | None = None,
    ) -> ArtifactEvent:
        body = StorageBody(
            registry=registry,
            registry_url=registry_url,
            repository=repository,
            path=path,
            status=status,
            action=action,
            tags=tags or [],
            name="acme/payments-api",
            previous_repository=previous_repository,
            previous_path=previous_path,
            github_repository=github_repository,
        )
        return self._event(key=d, kind="storage", minute=minute, digest_=d, **body.model_dump())

    def build(
        self,
        d: str,
        *,
        minute: float = 0,
        repository: str = "acme/payments-api",
        run_id: int | None = 42,
        commit: str | None = "c0ffee",
        attestation: str | None = "a" * 64,
        builder_id: str = "https://github.com/actions/runner",
    ) -> ArtifactEvent:
        body = BuildBody(
            repository=repository,
            workflow_run_id=run_id,
            commit=commit,
            attestation_sha256=attestation,
            builder_id=builder_id,
            predicate_type="https://slsa.dev/provenance/v1",
        )
        return self._event(key=d, kind="build", minute=minute, digest_=d, **body.model_dump())

    def run(
        self,
        *,
        minute: float = 0,
        repository: str = "acme/payments-api",
        run_id: int = 42,
        status: str = "completed",
        conclusion: str | None = "success",
        commit: str | None = "c0ffee",
    ) -> ArtifactEvent:
        body = BuildBody(
            repository=repository,
            workflow_run_id=run_id,
            status=status,
            conclusion=conclusion,
            commit=commit,
            workflow_name="release",
            run_url=f"https://github.com/{repository}/actions/runs/{run_id}",
        )
        return self._event(
            key=f"run:{repository}/{run_id}", kind="build", minute=minute, digest_=None, **body.model_dump()
        )

    def deploy(
        self,
        d: str | None,
        *,
        minute: float = 0,
        env: str = "prod",
        physical: str = "eu-west",
        cluster: str = "aks-prod-1",
        name: str = "payments-api",
        status: str = "deployed",
        risks: list[str] | None = None,
        asserted_by: str | None = None,
    ) -> ArtifactEvent:
        body = DeploymentBody(
            logical_environment=env,
            physical_environment=physical,
            cluster=cluster,
            deployment_name=name,
            status=status,
            runtime_risks=risks or [],
            risks_asserted_by=asserted_by,
            tags={"team": "payments"},
        )
        key = d if d is not None else slot_key(env, physical, cluster, name)
        return self._event(key=key, kind="deployment", minute=minute, digest_=d, **body.model_dump())

    def link(self, index: str, platform: str, *, minute: float = 0, arch: str = "linux/amd64") -> ArtifactEvent:
        body = LinkBody(index_digest=index, platform_digest=platform, platform=arch)
        return self._event(key=index, kind="link", minute=minute, digest_=index, **body.model_dump())

    def alert(
        self,
        subject: str,
        *,
        minute: float = 0,
        alert_key: str | None = None,
        vuln: str = "CVE-2025-0001",
        severity: str = "high",
        cvss: float | None = 7.5,
        epss: float | None = 0.1,
        state: str = "open",
        repository: str | None = None,
        tool: str = "trivy",
    ) -> ArtifactEvent:
        scope = "repository" if repository else "digest"
        key = repo_key(repository) if repository else subject
        body = AlertBody(
            alert_key=alert_key or f"{tool}:{vuln}:{key}",
            scope=scope,
            repository=repository,
            vulnerability_id=vuln,
            severity=severity,
            cvss_score=cvss,
            epss=epss,
            state=state,
            tool=tool,
            package_name="openssl",
            title=f"{vuln} in openssl",
        )
        return self._event(
            key=key, kind="alert", minute=minute, digest_=None if repository else subject, **body.model_dump()
        )


class Triage:
    """A hand-built multi-arch history with known answers.

    - index I (platforms A amd64, B arm64) stored in JFrog docker-local, then moved to docker-prod;
      built by run 42 of acme/payments-api (provenance on I, workflow_run webhook for the run);
      deployed in prod slot S1 with internet-exposed asserted by defender-for-cloud, then re-observed
      by Kubernetes without risk data (the risk stays);
    - OLD held slot S1 before I took it over (never decommissioned: no longer deployed anyway);
    - GONE was deployed in staging slot S2, which was later deleted (slot-wide decommission);
    - alerts: a critical CVE on platform B (reaches index I), a medium repository alert on
      Acme/Payments-API (reaches I through its build), a high CVE on X (stored in GHCR, not deployed),
      a fixed low CVE on I, and a high CVE on GONE (no longer deployed).
    """

    def __init__(self) -> None:
        e = Events()
        self.index, self.amd64, self.arm64 = digest("index"), digest("amd64"), digest("arm64")
        self.old, self.gone, self.x = digest("old"), digest("gone"), digest("x")
        I, A, B = self.index, self.amd64, self.arm64  # noqa: N806, E741 - the paper's names for the family
        self.cve_b = e.alert(B, minute=20, vuln="CVE-2025-1111", severity="critical", cvss=9.8, epss=0.92)
        self.repo_alert = e.alert(
            "",
            minute=21,
            repository="Acme/Payments-API",
            vuln="GHSA-aaaa-bbbb-cccc",
            severity="medium",
            cvss=None,
            epss=None,
            tool="dependabot",
        )
        self.cve_x = e.alert(self.x, minute=22, vuln="CVE-2025-2222", severity="high", cvss=7.5, epss=0.05)
        self.fixed_i = e.alert(I, minute=23, vuln="CVE-2025-3333", severity="low", cvss=3.1, epss=0.01, state="fixed")
        self.cve_gone = e.alert(self.gone, minute=24, vuln="CVE-2025-4444", severity="high", cvss=8.1, epss=0.3)
        self.events = [
            e.link(I, A, arch="linux/amd64"),
            e.link(I, B, minute=0.5, arch="linux/arm64"),
            e.storage(I, minute=1, tags=["1.0"]),
            e.storage(I, minute=2, tags=["latest"]),
            e.storage(I, minute=30, action="moved", repository="docker-prod", previous_repository="docker-local"),
            e.storage(
                self.x, minute=1, registry="ghcr", registry_url="https://ghcr.io", repository="acme/x", path=None
            ),
            e.build(I, minute=3),
            e.run(minute=4),
            e.deploy(self.old, minute=-60),
            e.deploy(I, minute=10, risks=["internet-exposed"], asserted_by="defender-for-cloud"),
            e.deploy(I, minute=40),
            e.deploy(
                self.gone,
                minute=5,
                env="staging",
                cluster="aks-stg-1",
                name="gone-api",
                risks=["sensitive-data"],
                asserted_by="defender-for-cloud",
            ),
            e.deploy(None, minute=50, env="staging", cluster="aks-stg-1", name="gone-api", status="decommissioned"),
            self.cve_b,
            self.repo_alert,
            self.cve_x,
            self.fixed_i,
            self.cve_gone,
        ]

    def key(self, alert: ArtifactEvent) -> str:
        assert alert.alert is not None
        return alert.alert.alert_key
