"""The whole system, end to end: a realistic sequence posted to the running connectors, the final linked
state read back from the enriched topic and from ClickHouse, and every fact compared with the expected
linked view."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from linked_artifacts import bootstrap, gc_tuning, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from pipeline.derive import linked_view
from pipeline.state import LinkedArtifactState
from tests.conftest import Services
from tests.integration.e2e_story import AMD64, ARM64, COMMIT, CVE, INDEX, REPO, RUN_ID, post_all, story

pytestmark = pytest.mark.integration

AKS = "slot:prod/westeurope/aks-prod-weu-1/payments-payments-api-app"
GKE = "slot:prod/us-east1/gke-prod-use-1/payments-payments-api-app"


def _tokens(services: Services) -> dict[str, str]:
    names = [
        "github_webhook_secret",
        "artifactory_secret",
        "metadata_write_token",
        "cloudevents_token",
        "scans_token",
        "attestations_token",
        "query_token",
    ]
    return {name: services.token(name) for name in names}


def _wait(check: Callable[[], Any], *, timeout: float = 90, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


async def _latest_states(services: Services, keys: set[str]) -> dict[str, LinkedArtifactState]:
    """The last record per key on the enriched (compacted) topic."""
    settings = services.settings
    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "linked_artifact"),
        schema_name="linked_artifact",
        model=LinkedArtifactState,
    )
    consumer = AIOKafkaConsumer(
        topics.enriched_topic(settings),
        bootstrap_servers=settings.kafka_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latest: dict[str, LinkedArtifactState] = {}
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    key = record.key.decode()
                    if key in keys:
                        latest[key] = codec.decode(record.value)
    finally:
        await consumer.stop()
    return latest


def _effective_deployments(view: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    return {d["slot"]: (d["active"], d["status"]) for d in view["effective"]["deployments"]}


def test_story_converges_to_the_expected_linked_view_on_the_enriched_topic(services: Services) -> None:
    tokens = _tokens(services)
    with httpx.Client(base_url=services.connectors_url, timeout=30) as client:
        answers = post_all(client, story(tokens))
    assert all(status in (200, 202) for _, status, _ in answers), answers

    query = httpx.Client(base_url=services.query_url, headers={"Authorization": f"Bearer {tokens['query_token']}"})

    def settled() -> dict[str, Any] | None:
        response = query.get(f"/v1/state/{INDEX}")
        if response.status_code != 200:
            return None
        view: dict[str, Any] = response.json()
        alerts = view["effective"]["alerts"]
        builds = view["builds"]
        # The aks slot's three changes (deployed, decommissioned, the older deploy delivered last) are all
        # in: a state published between two batches may otherwise lack the later ones.
        aks_changes = [len(d["history"]) for d in view["deployments"] if d["slot"] == AKS]
        done = (
            alerts
            and builds
            and (builds[0].get("workflow_run") or {}).get("status") == "completed"  # null until the run arrives
            and len(view["linked_digests"]) == 2
            and aks_changes == [3]
        )
        return view if done else None

    view = _wait(settled, what="the index's state to include alerts, the run, both platforms and every aks change")

    # Storage: Artifactory's list manifest and GHCR's package (GitHub publish + runtime observation) merge
    # into one location each; the redelivered GitHub delivery adds nothing.
    locations = {(s["registry_url"].rstrip("/"), s["repository"], s["path"]): s for s in view["storage"]}
    assert set(locations) == {
        (
            "https://acme.jfrog.io/artifactory",
            "docker-prod-local",
            "acme/payments-api/1.42.0/list.manifest.json",
        ),
        ("https://ghcr.io", "acme/payments-api", ""),
    }
    assert all(s["status"] == "active" for s in view["storage"])
    assert {t["tag"] for s in view["storage"] for t in s["tags"]} == {"1.42.0"}

    # Builds: the provenance and the workflow run (completed, despite the older in_progress arriving last)
    # are one build.
    (build,) = view["builds"]
    assert build["repository"] == REPO and build["commit"] == COMMIT
    assert build["workflow_run"]["id"] == RUN_ID
    assert (build["workflow_run"]["status"], build["workflow_run"]["conclusion"]) == ("completed", "success")
    assert build["provenance"]["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert build["builder_id"].endswith("release.yml@refs/heads/main")

    # Deployments: gke active with its risk; aks decommissioned, and the older late deploy did not revive it.
    deployments = _effective_deployments(view)
    assert deployments[GKE] == (True, "deployed")
    assert deployments[AKS] == (False, "decommissioned")
    assert view["effective"]["deployed"] is True
    assert view["effective"]["runtime_risks"] == ["lateral-movement"]
    assert view["effective"]["environments"] == ["prod"]

    # Alerts: the scan named the arm64 platform; it reaches the index, once despite the duplicate report.
    (alert,) = view["effective"]["alerts"]
    assert alert["vulnerability_id"] == CVE and alert["severity"] == "critical"
    assert alert["via"] == ARM64 and alert["via_kind"] == "platform"
    assert alert["cvss_score"] == pytest.approx(9.8) and alert["epss"] == pytest.approx(0.91)

    # Links: both platforms, and the deployment context reaches each platform digest.
    assert {d["digest"] for d in view["linked_digests"]} == {AMD64, ARM64}
    for platform in (AMD64, ARM64):

        def context_reached(p: str = platform) -> Any:
            r = query.get(f"/v1/state/{p}")
            return (
                r.status_code == 200
                and _effective_deployments(r.json()).get(GKE) == (True, "deployed")
                and [len(d["history"]) for d in r.json()["effective"]["deployments"] if d["slot"] == AKS] == [3]
                and r.json()
            )

        platform_view = _wait(context_reached, what=f"deployment context on {platform}, with every aks change")
        assert _effective_deployments(platform_view)[AKS] == (False, "decommissioned")

    # The enriched topic's latest record per digest is exactly the worker's state.
    latest = asyncio.run(_latest_states(services, {INDEX, AMD64, ARM64}))
    final = query.get(f"/v1/state/{INDEX}").json()
    assert linked_view(latest[INDEX]) == final


def test_story_reads_the_same_from_clickhouse_through_any_digest_of_the_family(services: Services) -> None:
    tokens = _tokens(services)
    with httpx.Client(base_url=services.connectors_url, timeout=30) as client:
        post_all(client, story(tokens))  # idempotent if the other test already told it
    query = httpx.Client(base_url=services.query_url, headers={"Authorization": f"Bearer {tokens['query_token']}"})

    seen: list[dict[str, Any]] = []

    def complete() -> dict[str, Any] | None:
        # The sink makes batches visible one at a time, so wait for the story's end (the aks decommission and
        # the gke deploy), not for its first deployment; a timeout shows the last view read.
        response = query.get(f"/v1/artifacts/{ARM64}")
        if response.status_code != 200:
            return None
        view: dict[str, Any] = response.json()
        seen[:] = [view]
        done = (
            view["alerts"]
            and {d["cluster"] for d in view["deployments"]} == {"gke-prod-use-1"}
            and any(b["workflow"]["status"] == "completed" for b in view["builds"])
        )
        return view if done else None

    try:
        view = _wait(complete, what="ClickHouse's linked view of the family")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}; last view: {seen[-1] if seen else None!r}") from None
    assert view == query.get(f"/v1/artifacts/{ARM64}").json()
    by_index = query.get(f"/v1/artifacts/{INDEX}").json()
    assert by_index["family"] == view["family"]
    assert view["family"]["root"] == INDEX
    assert {p["digest"]: p["platform"] for p in view["family"]["platform_digests"]} == {
        AMD64: "linux/amd64",
        ARM64: "linux/arm64",
    }
    assert view["repositories"] == [REPO]

    index_locations = {(s["registry_url"], s["repository"], s["path"]) for s in view["storage"] if s["digest"] == INDEX}
    assert (
        "https://acme.jfrog.io/artifactory/",
        "docker-prod-local",
        "acme/payments-api/1.42.0/list.manifest.json",
    ) in index_locations
    assert all(s["status"] == "active" for s in view["storage"])

    (run_build,) = [b for b in view["builds"] if b["workflow_run_id"] == RUN_ID]
    assert run_build["digest"] == INDEX and run_build["commit"] == COMMIT
    assert (run_build["workflow"]["status"], run_build["workflow"]["conclusion"]) == ("completed", "success")
    assert run_build["predicate_type"] == "https://slsa.dev/provenance/v1"
    assert run_build["attestation_sha256"]

    # Current deployments: gke only (aks was decommissioned, and the late older deploy did not revive it).
    assert {(d["digest"], d["cluster"]) for d in view["deployments"]} == {(INDEX, "gke-prod-use-1")}
    (gke,) = view["deployments"]
    assert gke["runtime_risks"] == ["lateral-movement"]

    # The arm64 finding applies to the family, once, ranked with its reasons.
    (alert,) = view["alerts"]
    assert alert["vulnerability_id"] == CVE and alert["severity"] == "critical"
    assert alert["reasons"] and alert["rank"] == 1

    # The history table holds every event once, despite redeliveries and the duplicate report.
    rows = query.post("/v1/sql", json={"sql": "SELECT count(), uniqExact(event_id) FROM events"}).json()["rows"]
    assert rows[0][0] == rows[0][1]

    # The alert filter finds it through the deployment context.
    found = query.get("/v1/alerts", params={"q": "has:deployment runtime-risk:lateral-movement is:open"}).json()
    assert CVE in {a["vulnerability_id"] for a in found["results"]}
    assert not [
        a
        for a in query.get("/v1/alerts", params={"q": "runtime-risk:internet-exposed"}).json()["results"]
        if a["vulnerability_id"] == CVE
    ]

    # Once the events stop, the worker's sink brings the artifacts summary snapshot up to date (after an
    # insert, or when it next finds nothing to write), and the pages' list reads it.
    current = (
        "SELECT count() FROM artifact_summary_snapshot WHERE family = '' AND (change_rows, change_hash) = "
        "(SELECT sum(rows), sum(hash) FROM event_change_state)"
    )

    def snapshot_current() -> bool:
        return bool(query.post("/v1/sql", json={"sql": current}).json()["rows"][0][0])

    _wait(snapshot_current, what="the artifacts summary snapshot to catch up with the history")
    metrics = query.get("/metrics").text
    assert re.search(r'la_sink_snapshot_refreshes\{snapshot="artifact_summary"\} [1-9]', metrics), metrics
    # The worker runs with the services' garbage-collector tuning (linked_artifacts.gc_tuning).
    young = gc_tuning.THRESHOLDS[0]
    assert re.search(rf'la_gc_threshold\{{generation="0"\}} {young}\.0', metrics), metrics
    # Batches leave what they built frozen, out of the collector's sweeps.
    assert re.search(r"la_gc_batches_frozen_total [1-9]", metrics), metrics
    assert re.search(r"process_cpu_seconds_total [0-9]", metrics), metrics
    # The worker kept at most 3 decoded states between batches (the services' setting): the rest were dropped
    # and decoded again from the table, and the story still converged to the expected view above.
    assert re.search(r"la_worker_state_cache_evicted [1-9]", metrics), metrics
    # Every record of the story reached the stream through the worker's consumer (pipeline.faust_consumer).
    assert re.search(r'la_worker_record_handovers\{path="direct"\} [1-9]', metrics), metrics
    listed = query.get("/artifacts", params={"find": "payments-api"})
    assert listed.status_code == 200 and INDEX in listed.text
