"""Hypothesis strategies: event histories of one multi-arch service across every key kind.

Times are drawn from a handful of minutes so that same-second ties are frequent; event ids carry a random
prefix so that the id tie-breaker does not follow the order in which events were generated.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from linked_artifacts.events import RUNTIME_RISKS, ArtifactEvent, Source
from tests.unit.pipeline import factory as f

DIGESTS = [f.INDEX, f.AMD64, f.ARM64]
MINUTES = st.integers(min_value=0, max_value=4)

Template = Callable[[st.DrawFn, str, int], ArtifactEvent]


def _storage(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    key = draw(st.sampled_from([f.INDEX, f.AMD64]))
    kind = draw(st.sampled_from(["push", "move", "copy", "status"]))
    tags = draw(st.lists(st.sampled_from(["latest", "1.4.2", "stable"]), max_size=2))
    if kind == "move":
        return f.storage(
            eid,
            key,
            minute,
            repository="docker-prod",
            previous_repository="docker-local",
            action="moved",
            tags=tags,
        )
    if kind == "copy":
        return f.storage(
            eid, key, minute, repository="docker-prod", previous_repository="docker-local", action="copied"
        )
    status = draw(st.sampled_from(["active", "eol", "deleted"])) if kind == "status" else "active"
    repository = draw(st.sampled_from(["docker-local", "docker-prod"]))
    size = draw(st.none() | st.sampled_from([1782, 1790]))
    return f.storage(eid, key, minute, repository=repository, status=status, tags=tags, size=size)


def _link(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    platform = draw(st.sampled_from([f.AMD64, f.ARM64]))
    key = draw(st.sampled_from([f.INDEX, platform]))
    # Scanners report links too, sometimes without the platform: the two sides learn different details.
    source: Source = draw(st.sampled_from(["artifactory", "grype"]))
    with_platform = draw(st.booleans())
    return f.link(
        eid, key, platform_digest=platform, minute=minute, source=source, with_platform=with_platform
    )


def _provenance(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    key = draw(st.sampled_from([*DIGESTS, f.OTHER]))
    commit = draw(st.sampled_from([f.COMMIT, "aa" * 20]))
    return f.provenance(eid, key, minute, commit=commit)


def _label_build(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    key = draw(st.sampled_from(DIGESTS))
    return f.build(
        eid,
        key,
        minute,
        source="github",
        repository=f.REPO,
        commit=f.COMMIT,
    )


def _workflow_run(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    status = draw(st.sampled_from(["queued", "in_progress", "completed"]))
    conclusion = draw(st.sampled_from(["success", "failure"])) if status == "completed" else None
    return f.workflow_run(eid, minute, status=status, conclusion=conclusion)


def _deployment(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    key = draw(st.sampled_from([f.INDEX, f.INDEX, f.OTHER, f.AMD64]))
    slot = draw(st.sampled_from(list(f.SLOTS)))
    status = draw(st.sampled_from(["deployed", "deployed", "decommissioned"]))
    asserter = draw(st.sampled_from([None, "defender-for-cloud", "k8s:aks-weu-1"]))
    risks = draw(st.lists(st.sampled_from(RUNTIME_RISKS), max_size=2)) if asserter else []
    return f.deployment(eid, key, minute, slot=slot, status=status, risks=risks, asserted_by=asserter)


def _slot_decommission(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    return f.slot_decommission(eid, minute, slot=draw(st.sampled_from(list(f.SLOTS))))


def _digest_alert(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    key = draw(st.sampled_from(DIGESTS))
    return f.alert(
        eid,
        key,
        minute,
        alert_key=draw(st.sampled_from(["trivy:CVE-2026-0001", "trivy:CVE-2026-0002"])) + "@" + key[7:15],
        state=draw(st.sampled_from(["open", "open", "dismissed", "fixed"])),
        cvss=draw(st.none() | st.sampled_from([7.5, 9.8])),
        epss=draw(st.none() | st.sampled_from([0.01, 0.42])),
    )


def _repo_alert(draw: st.DrawFn, eid: str, minute: int) -> ArtifactEvent:
    return f.alert(
        eid,
        f.REPO_KEY,
        minute,
        alert_key=draw(st.sampled_from(["dependabot:1", "code-scanning:7"])),
        state=draw(st.sampled_from(["open", "fixed", "dismissed"])),
        severity=draw(st.sampled_from(["high", "critical"])),
        source="dependabot",
    )


TEMPLATES: list[Template] = [
    _storage,
    _link,
    _link,
    _provenance,
    _label_build,
    _workflow_run,
    _deployment,
    _deployment,
    _slot_decommission,
    _digest_alert,
    _repo_alert,
]


@st.composite
def histories(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 14) -> list[ArtifactEvent]:
    """Distinct events (unique ids). Redeliveries are made by the schedules that deliver them."""
    size = draw(st.integers(min_value=min_size, max_value=max_size))
    events = []
    for position in range(size):
        template = draw(st.sampled_from(TEMPLATES))
        eid = f"{draw(st.integers(min_value=0, max_value=99)):02d}-{position:02d}"
        events.append(template(draw, eid, draw(MINUTES)))
    return events


@st.composite
def scenarios(draw: st.DrawFn) -> list[ArtifactEvent]:
    """Every situation the merge must handle, at random times and statuses, plus random extra events:
    an index with two platforms, deployments in two clusters with risks from two asserters, a slot taken
    over by another digest, a slot-keyed decommission, a repository alert, a workflow run and the provenance
    naming it, and a same-second tie on one alert."""

    def minute() -> int:
        return draw(MINUTES)

    tie = minute()
    core = [
        f.link("c-link-amd", draw(st.sampled_from([f.INDEX, f.AMD64])), platform_digest=f.AMD64),
        f.link("c-link-arm", draw(st.sampled_from([f.INDEX, f.ARM64])), platform_digest=f.ARM64),
        f.deployment(
            "c-dep-weu",
            f.INDEX,
            minute(),
            slot="weu",
            risks=["internet-exposed"],
            asserted_by="defender-for-cloud",
        ),
        f.deployment(
            "c-dep-eus", f.INDEX, minute(), slot="eus", risks=["sensitive-data"], asserted_by="k8s:aks-eus-1"
        ),
        f.deployment("c-take-weu", f.OTHER, minute(), slot="weu"),
        f.slot_decommission("c-slot-off", minute(), slot=draw(st.sampled_from(list(f.SLOTS)))),
        f.alert("c-repo-alert", f.REPO_KEY, minute(), alert_key="dependabot:1", source="dependabot"),
        f.workflow_run("c-run", minute(), status=draw(st.sampled_from(["in_progress", "completed"]))),
        f.provenance("c-prov", f.INDEX, minute()),
        f.alert("c-tie-open", f.AMD64, tie, alert_key="trivy:CVE-2026-0009", state="open", cvss=7.5),
        f.alert("c-tie-fixed", f.AMD64, tie, alert_key="trivy:CVE-2026-0009", state="fixed", cvss=9.8),
    ]
    return core + draw(histories(min_size=0, max_size=8))
