"""Builders of canonical events for the merge tests, and a tiny in-memory router of the multi-key system."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from linked_artifacts.events import (
    AlertBody,
    ArtifactEvent,
    BuildBody,
    DeploymentBody,
    LinkBody,
    Source,
    StorageBody,
    repo_key,
    run_key,
    slot_key,
)
from pipeline.derive import derived_from
from pipeline.merge import apply_derived, merge
from pipeline.state import Derived, LinkedArtifactState, empty_state

BASE = datetime(2026, 5, 5, 10, 0, tzinfo=UTC)
INDEX = "sha256:" + "1b" * 32
AMD64 = "sha256:" + "58" * 32
ARM64 = "sha256:" + "f6" * 32
OTHER = "sha256:" + "94" * 32  # another release of the same service, that takes over slots
REPO = "acme/payments-api"
REPO_KEY = repo_key(REPO)
RUN_ID = 12345678901
RUN_KEY = run_key(REPO, RUN_ID)
INVOCATION = f"https://github.com/{REPO}/actions/runs/{RUN_ID}/attempts/1"
REGISTRY_URL = "https://acme.jfrog.io/artifactory/"
COMMIT = "6c62fb45fe66bfb1ea9a66abc38f6a0cc974292b"

# Two deployment slots of the same service in two clusters.
SLOTS: dict[str, tuple[str, str, str, str]] = {
    "weu": ("prod", "westeurope", "aks-weu-1", "payments/Deployment/api/app"),
    "eus": ("prod", "eastus", "aks-eus-1", "payments/Deployment/api/app"),
}
SLOT_KEYS = {name: slot_key(*parts) for name, parts in SLOTS.items()}


def at(minute: float) -> datetime:
    return BASE + timedelta(minutes=minute)


def _event(
    *, eid: str, key: str, minute: float, source: Source = "demo", digest: str | None = None, **body: Any
) -> ArtifactEvent:
    (kind,) = body
    return ArtifactEvent(
        event_id=eid,
        key=key,
        kind=kind,
        source=source,
        digest=digest if digest is not None else (key if key.startswith("sha256:") else None),
        event_time=at(minute),
        ingest_time=at(minute + 1000),
        delivery_id="d-" + eid,
        **body,
    )


def storage(
    eid: str,
    key: str,
    minute: float,
    *,
    repository: str = "docker-local",
    path: str | None = None,
    status: str = "active",
    action: str = "pushed",
    tags: Iterable[str] = (),
    previous_repository: str | None = None,
    previous_path: str | None = None,
    size: int | None = None,
    source: Source = "artifactory",
) -> ArtifactEvent:
    body = StorageBody.model_validate(
        {
            "registry": "jfrog-artifactory",
            "registry_url": REGISTRY_URL,
            "repository": repository,
            "path": path if path is not None else f"payments-api/{key[7:19]}",
            "status": status,
            "action": action,
            "tags": list(tags),
            "previous_repository": previous_repository,
            "previous_path": previous_path,
            "size": size,
            "name": "acme/payments-api",
        }
    )
    return _event(eid=eid, key=key, minute=minute, source=source, storage=body)


def build(
    eid: str, key: str, minute: float, *, source: Source = "attestation", **fields: Any
) -> ArtifactEvent:
    return _event(eid=eid, key=key, minute=minute, source=source, build=BuildBody(**fields))


def provenance(eid: str, key: str, minute: float, **fields: Any) -> ArtifactEvent:
    values: dict[str, Any] = {
        "invocation_id": INVOCATION,
        "predicate_type": "https://slsa.dev/provenance/v1",
        "builder_id": f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main",
        "build_type": "https://actions.github.io/buildtypes/workflow/v1",
        "attestation_sha256": "ab" * 32,
        "commit": COMMIT,
    }
    values.update(fields)
    return build(eid, key, minute, **values)


def workflow_run(eid: str, minute: float, *, status: str = "completed", **fields: Any) -> ArtifactEvent:
    values: dict[str, Any] = {
        "repository": REPO,
        "workflow_run_id": RUN_ID,
        "run_attempt": 1,
        "workflow_name": "release",
        "status": status,
        "commit": COMMIT,
        "run_url": f"https://github.com/{REPO}/actions/runs/{RUN_ID}",
    }
    values.update(fields)
    return build(eid, RUN_KEY, minute, source="github", **values)


def deployment(
    eid: str,
    key: str,
    minute: float,
    *,
    slot: str = "weu",
    status: str = "deployed",
    risks: Iterable[str] = (),
    asserted_by: str | None = None,
    source: Source = "kubernetes",
    **fields: Any,
) -> ArtifactEvent:
    logical, physical, cluster, name = SLOTS[slot]
    body = DeploymentBody.model_validate(
        {
            "logical_environment": logical,
            "physical_environment": physical,
            "cluster": cluster,
            "deployment_name": name,
            "status": status,
            "runtime_risks": list(risks),
            "risks_asserted_by": asserted_by,
            **fields,
        }
    )
    digest = key if key.startswith("sha256:") else None
    return _event(eid=eid, key=key, minute=minute, source=source, digest=digest, deployment=body)


def slot_decommission(eid: str, minute: float, *, slot: str = "weu") -> ArtifactEvent:
    """A workload deleted: the runtime names the slot but no digest."""
    return deployment(eid, SLOT_KEYS[slot], minute, slot=slot, status="decommissioned")


def link(
    eid: str,
    key: str,
    *,
    platform_digest: str = AMD64,
    minute: float = 0,
    source: Source = "artifactory",
    with_platform: bool = True,
) -> ArtifactEvent:
    arch = {AMD64: "linux/amd64", ARM64: "linux/arm64"}.get(platform_digest) if with_platform else None
    body = LinkBody(index_digest=INDEX, platform_digest=platform_digest, platform=arch)
    return _event(eid=eid, key=key, minute=minute, source=source, link=body)


def alert(
    eid: str,
    key: str,
    minute: float,
    *,
    alert_key: str = "trivy:CVE-2026-0001",
    state: str = "open",
    severity: str = "high",
    cvss: float | None = None,
    epss: float | None = None,
    source: Source = "trivy",
) -> ArtifactEvent:
    repository_scope = key.startswith("repo:")
    body = AlertBody.model_validate(
        {
            "alert_key": alert_key,
            "scope": "repository" if repository_scope else "digest",
            "repository": REPO if repository_scope else None,
            "vulnerability_id": alert_key.split(":", 1)[-1],
            "severity": severity,
            "cvss_score": cvss,
            "epss": epss,
            "state": state,
            "tool": source,
        }
    )
    return _event(eid=eid, key=key, minute=minute, source=source, alert=body)


# --- the system in memory -------------------------------------------------------------------------------


class Router:
    """Every key's state, with the processor's one rule: apply, then send what derived_from says."""

    def __init__(self) -> None:
        self.states: dict[str, LinkedArtifactState] = {}
        self.sent = 0

    def state(self, key: str) -> LinkedArtifactState:
        return self.states.get(key) or empty_state(key)

    def deliver(self, item: ArtifactEvent | Derived) -> list[Derived]:
        if isinstance(item, ArtifactEvent):
            before = self.state(item.key)
            after = merge(before, item)
        else:
            before = self.state(item.target_key)
            after = apply_derived(before, item)
        self.states[after.key] = after
        out = derived_from(before, after)
        self.sent += len(out)
        return out


def run_system(
    inputs: Sequence[ArtifactEvent],
    rng: random.Random | None = None,
    *,
    redeliver: float = 0.25,
    max_steps: int = 20_000,
) -> dict[str, LinkedArtifactState]:
    """Deliver events and derived messages until quiescence. Without ``rng``: in order, first in first out.
    With it: any pending item next (events and messages interleaved), each redelivered later with
    probability ``redeliver``."""
    router = Router()
    pending: list[ArtifactEvent | Derived] = list(inputs)
    steps = 0
    while pending:
        item = pending.pop(rng.randrange(len(pending)) if rng is not None else 0)
        pending.extend(router.deliver(item))
        if rng is not None and rng.random() < redeliver:
            pending.append(item)
        steps += 1
        assert steps < max_steps, "derived messages did not reach quiescence"
    return router.states


def fold(state: LinkedArtifactState, events: Iterable[ArtifactEvent]) -> LinkedArtifactState:
    for event in events:
        state = merge(state, event)
    return state
