"""The ten analyst questions of the README, run as written there, on the demo organisation.

The SQL is read from README.md itself (the fenced ``sql`` blocks under "Ten questions for the history"), so
the README cannot drift from what works. The demo organisation goes through the real connector parsers
into a chDB warehouse (or the configured ClickHouse server), every query runs through the read-only
analyst path (``run_readonly_sql``) with its named parameters bound by ClickHouse, and each answer is
compared with one computed from the demo's own model (``linked_artifacts.demo.org``), never from SQL.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from connectors.app import load_parsers
from connectors.base import Delivery
from connectors.jsonlimits import parse_json
from history.client import Warehouse
from history.rows import insert_events
from history.sql import run_readonly_sql
from linked_artifacts.demo.org import Build, DeploymentChange, Org, build_org, family_of
from linked_artifacts.demo.requests import Credentials, build_plan
from linked_artifacts.events import ArtifactEvent

from .builders import Events, digest
from .conftest import open_database

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "## Ten questions for the history"
NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
# About 3,000 events: every archetype of the demo (the flagship included) in a few seconds of loading.
TARGET_EVENTS = 3_000
FAR = datetime(2299, 12, 31, tzinfo=UTC)

# A workload nobody attested: deployed to prod by hand, with no build behind it (question 5).
UNPROVEN = digest("hand-pushed debug shell")
UNPROVEN_SLOT = ("prod", "westeurope", "aks-prod-weu-1", "tools-debug-shell-app")


# --- the README ---------------------------------------------------------------------------------------------


class Question(NamedTuple):
    number: int
    title: str
    sql: str
    parameters: tuple[str, ...]


_HEADING = re.compile(r"^### (\d+)\. (.+)$", re.MULTILINE)
_SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)
_PLACEHOLDER = re.compile(r"\{(\w+):[^}]+\}")


def readme_questions(text: str) -> dict[int, Question]:
    """Every "### N. title" of the section with the first ```sql block under it."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    headings = list(_HEADING.finditer(section))
    questions = {}
    for position, heading in enumerate(headings):
        stop = headings[position + 1].start() if position + 1 < len(headings) else len(section)
        block = _SQL_BLOCK.search(section, heading.end(), stop)
        assert block is not None, f"question {heading.group(1)} has no sql block"
        sql = block.group(1)
        names = tuple(dict.fromkeys(_PLACEHOLDER.findall(sql)))
        questions[int(heading.group(1))] = Question(int(heading.group(1)), heading.group(2), sql, names)
    return questions


QUESTIONS = readme_questions(README.read_text(encoding="utf-8"))


def test_the_readme_has_ten_numbered_questions_each_with_sql() -> None:
    assert sorted(QUESTIONS) == list(range(1, 11))
    titles = " ".join(q.title.lower() for q in QUESTIONS.values())
    assert "internet-exposed production workloads" in titles
    assert "every place this digest was deployed" in titles


# --- the demo organisation, loaded through the real parsers --------------------------------------------------


def demo_events(org: Org) -> list[ArtifactEvent]:
    parsers = load_parsers()
    received_at = org.now + timedelta(minutes=1)
    events: list[ArtifactEvent] = []
    for request in build_plan(org, Credentials.placeholder()):
        payload = parse_json(request.body, max_depth=64, max_items=200_000)
        delivery = Delivery(
            endpoint=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=request.body,
            received_at=received_at,
            query=dict(request.query),
            path_params=dict(request.path_params),
        )
        events.extend(parsers[request.endpoint](delivery, payload).events)
    return events


def unproven_deployment() -> ArtifactEvent:
    env, physical, cluster, name = UNPROVEN_SLOT
    event = Events().deploy(UNPROVEN, minute=0, env=env, physical=physical, cluster=cluster, name=name)
    return event.model_copy(update={"event_time": NOW - timedelta(days=2), "event_id": "readme-unproven-1"})


class Demo(NamedTuple):
    org: Org
    warehouse: Warehouse


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    org = build_org(seed=1, now=NOW, target_events=TARGET_EVENTS)
    warehouse = open_database(f"la_readme_{uuid.uuid4().hex[:12]}")
    insert_events(warehouse, [*demo_events(org), unproven_deployment()], dedup_token=f"readme:{uuid.uuid4()}")
    try:
        yield Demo(org, warehouse)
    finally:
        warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        warehouse.close()


def ask(demo: Demo, number: int, **parameters: Any) -> list[dict[str, Any]]:
    """The README's SQL of question ``number``, read-only, with exactly the parameters it names."""
    question = QUESTIONS[number]
    assert set(parameters) == set(question.parameters), question.parameters
    result = run_readonly_sql(demo.warehouse, question.sql, parameters=parameters, max_rows=100_000)
    assert not result.truncated
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    # The normal session agrees with the read-only one.
    assert demo.warehouse.rows(question.sql, parameters) == rows
    return rows


# --- the model's answers ---------------------------------------------------------------------------------------


SlotKey = tuple[str, str]  # (cluster, deployment_name): unique within the demo


def slot_changes(org: Org) -> dict[SlotKey, list[DeploymentChange]]:
    """Each slot's changes in the order the system ranks them: time, then decommissioned after deployed."""
    by_slot: dict[SlotKey, list[DeploymentChange]] = defaultdict(list)
    for change in org.deployments:
        by_slot[(change.slot.cluster.name, change.slot.deployment_name)].append(change)
    return {k: sorted(v, key=lambda c: (c.at, c.status == "decommissioned")) for k, v in by_slot.items()}


def holders_at(org: Org, at: datetime) -> dict[SlotKey, DeploymentChange]:
    """The change holding each slot at ``at``, for slots whose latest change by then is a deployment."""
    held = {}
    for key, changes in slot_changes(org).items():
        seen = [c for c in changes if c.at <= at]
        if seen and seen[-1].status == "deployed":
            held[key] = seen[-1]
    return held


def releases(org: Org) -> list[Build]:
    return [b for b in org.builds if b.subject is not None]


def critical_families(org: Org) -> dict[str, set[str]]:
    """Family -> CVEs of the open critical alerts that apply to it (scanner findings are always open)."""
    families = family_of(org)
    found: dict[str, set[str]] = defaultdict(set)
    for scan in org.scans:
        for vuln in scan.findings:
            if vuln.severity == "critical":
                found[families[scan.subject]].add(vuln.cve)
    for alert in org.repo_alerts:
        if alert.state == "open" and alert.vulnerability.severity == "critical":
            for build in releases(org):
                if build.repository == alert.repository:
                    found[families[build.subject or ""]].add(alert.vulnerability.cve)
    return found


def flagship(org: Org) -> Build:
    """The flagship's latest release that runs in prod now."""
    running = {c.digest for c in holders_at(org, org.now).values() if c.slot.environment == "prod"}
    return [b for b in releases(org) if b.repository.flagship and b.subject in running][-1]


# --- the questions -----------------------------------------------------------------------------------------------


def test_1_internet_exposed_prod_workloads_that_ran_a_critical_digest_last_week(demo: Demo) -> None:
    org = demo.org
    since, until = org.now - timedelta(days=7), org.now
    critical = critical_families(org)
    families = family_of(org)
    expected: dict[tuple[str, str, str], set[str]] = {}
    for (cluster, name), changes in slot_changes(org).items():
        for position, change in enumerate(changes):
            ends = changes[position + 1].at if position + 1 < len(changes) else FAR
            family = families[change.digest]
            if (
                change.status == "deployed"
                and change.slot.environment == "prod"
                and "internet-exposed" in change.risks
                and change.at < until
                and ends > since
                and family in critical
            ):
                expected[(cluster, name, change.digest)] = critical[family]
    rows = ask(demo, 1, since=since, until=until)
    assert {(r["cluster"], r["workload"], r["digest"]): set(r["critical_alerts"]) for r in rows} == expected
    # The demo's story: the flagship, internet-exposed in prod with an exploitable critical, is among them.
    assert any(digest == flagship(org).subject for _, _, digest in expected)


def test_2_every_place_this_digest_was_deployed_and_when(demo: Demo) -> None:
    org = demo.org
    build = flagship(org)
    assert build.image is not None and build.image.index is not None
    now = holders_at(org, org.now)
    first: dict[SlotKey, datetime] = {}
    for key, changes in slot_changes(org).items():
        mine = [c.at for c in changes if c.status == "deployed" and c.digest == build.subject]
        if mine:
            first[key] = min(mine)
    expected = {key: (at, key in now and now[key].digest == build.subject) for key, at in first.items()}
    assert any(running for _, running in expected.values())
    # Asked with a platform manifest of the image: the family's index is what was deployed.
    rows = ask(demo, 2, digest=build.image.manifests[-1].digest)
    assert {(r["cluster"], r["workload"]): (r["first_deployed"], bool(r["running_now"])) for r in rows} == expected
    assert {r["deployed_digest"] for r in rows} == {build.subject}
    assert [r["first_deployed"] for r in rows] == sorted(r["first_deployed"] for r in rows)


def test_3_which_registries_hold_this_artifact_now(demo: Demo) -> None:
    org = demo.org
    image = flagship(org).image
    assert image is not None
    rows = ask(demo, 3, digest=image.subject)
    expected_hosts = {"acme.jfrog.io"} | ({"ghcr.io"} if image.on_ghcr else set())
    assert {r["registry_host"]: r["all_tags"] for r in rows} == {host: [image.version] for host in expected_hosts}
    package = next(p for p in org.packages if p.on_github_packages)
    rows = ask(demo, 3, digest=package.digest)
    assert {r["registry_host"] for r in rows} == {"acme.jfrog.io", "npm.pkg.github.com"}


def test_4_what_was_running_in_a_cluster_at_a_time(demo: Demo) -> None:
    org = demo.org
    cluster, at = "aks-prod-weu-1", org.now - timedelta(days=10)
    expected = {
        (name, change.digest, change.build.repository.full_name)
        for (slot_cluster, name), change in holders_at(org, at).items()
        if slot_cluster == cluster
    }
    assert expected
    rows = ask(demo, 4, cluster=cluster, as_of=at)
    assert {(r["workload"], r["digest"], r["repository"]) for r in rows} == expected


def test_5_artifacts_running_in_prod_without_provenance(demo: Demo) -> None:
    # Every release of the demo is attested, so only the hand-deployed digest has no provenance.
    assert all(b.attested_at is not None for b in releases(demo.org))
    rows = ask(demo, 5)
    assert [(r["cluster"], r["workload"], r["digest"]) for r in rows] == [
        (UNPROVEN_SLOT[2], UNPROVEN_SLOT[3], UNPROVEN)
    ]


def test_6_repository_alerts_open_fixed_dismissed_and_days_to_fix(demo: Demo) -> None:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"open": 0, "fixed": 0, "dismissed": 0})
    fix_days: dict[str, list[float]] = defaultdict(list)
    for alert in demo.org.repo_alerts:
        name = alert.repository.full_name
        counts[name][alert.state] += 1
        if alert.state == "fixed" and alert.closed_at is not None:
            fix_days[name].append((alert.closed_at - alert.created_at).total_seconds() / 86400)
    rows = ask(demo, 6)
    assert {
        r["repository"]: {"open": r["open_alerts"], "fixed": r["fixed_alerts"], "dismissed": r["dismissed_alerts"]}
        for r in rows
    } == counts
    for row in rows:
        days = fix_days[row["repository"]]
        if days:
            assert row["avg_days_to_fix"] == pytest.approx(sum(days) / len(days), abs=0.051)
        else:
            assert row["avg_days_to_fix"] is None
    assert any(fix_days.values())


def test_7_digests_built_from_a_repository_and_where_they_run(demo: Demo) -> None:
    org = demo.org
    repository = flagship(org).repository
    running: dict[str, set[str]] = defaultdict(set)
    for (cluster, _), change in holders_at(org, org.now).items():
        running[change.digest].add(f"{change.slot.environment}/{cluster}")
    expected = {
        b.subject: (b.run_id, "success", sorted(running[b.subject or ""]))
        for b in releases(org)
        if b.repository == repository
    }
    assert any(where for _, _, where in expected.values())
    rows = ask(demo, 7, repository=repository.full_name.upper())  # GitHub names are case-insensitive
    assert {r["digest"]: (r["workflow_run"], r["run_conclusion"], r["running_in"]) for r in rows} == expected
    assert {r["source_commit"] for r in rows} == {b.commit for b in releases(org) if b.repository == repository}


def test_8_time_from_push_to_production_per_repository(demo: Demo) -> None:
    hours: dict[str, list[float]] = defaultdict(list)
    for build in releases(demo.org):
        prod = [
            c.at
            for c in demo.org.deployments
            if c.build is build and c.status == "deployed" and c.slot.environment == "prod"
        ]
        if prod and build.pushed_at is not None:
            hours[build.repository.full_name].append((min(prod) - build.pushed_at).total_seconds() / 3600)
    assert hours
    rows = ask(demo, 8)
    assert {r["repository"]: r["releases_in_prod"] for r in rows} == {k: len(v) for k, v in hours.items()}
    for row in rows:
        spent = hours[row["repository"]]
        assert row["avg_hours"] == pytest.approx(sum(spent) / len(spent), abs=0.051)
        assert row["max_hours"] == pytest.approx(max(spent), abs=0.051)


def test_9_workloads_decommissioned_in_the_last_30_days(demo: Demo) -> None:
    org = demo.org
    since = org.now - timedelta(days=30)
    expected = set()
    for (cluster, name), changes in slot_changes(org).items():
        last = changes[-1]
        if last.status == "decommissioned" and last.at >= since:
            holder = [c for c in changes if c.status == "deployed"][-1]
            expected.add((last.slot.environment, cluster, name, holder.digest, last.at))
    assert expected
    rows = ask(demo, 9, since=since)
    assert {
        (r["environment"], r["cluster"], r["workload"], r["last_digest"], r["decommissioned_at"]) for r in rows
    } == expected


def test_10_sources_that_asserted_internet_exposed(demo: Demo) -> None:
    org = demo.org
    workloads: dict[str, set[SlotKey]] = defaultdict(set)
    for change in org.deployments:
        if change.status == "deployed" and "internet-exposed" in change.risks:
            workloads[change.slot.cluster.channel].add((change.slot.cluster.name, change.slot.deployment_name))
    for record in org.records:
        if "internet-exposed" in record.change.risks:
            slot = record.change.slot
            workloads["metadata-api"].add((slot.cluster.name, slot.deployment_name))
    assert set(workloads) == {"cloudevents", "kubernetes", "metadata-api"}
    rows = ask(demo, 10)
    by_source: dict[str, int] = defaultdict(int)
    for row in rows:
        assert row["asserted_by"], row
        by_source[row["source"]] += row["workloads"]
    assert by_source == {source: len(slots) for source, slots in workloads.items()}
