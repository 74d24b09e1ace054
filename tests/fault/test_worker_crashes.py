"""SIGKILL the worker mid-batch, several times at random points, while events flow. After the last restart
ClickHouse and the enriched topic converge to exactly the state of a run without crashes: every event
once in the history table, and every digest's published state equal to the pure merge of all events."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from linked_artifacts import bootstrap, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings
from pipeline.state import LinkedArtifactState, key_role, state_fingerprint
from tests.conftest import Stack, free_port, start_service
from tests.fault import forensics
from tests.integration.e2e_story import post_all, story
from tests.unit.pipeline.factory import run_system

pytestmark = pytest.mark.fault


def _cloudevent_batches(
    token: str, *, batches: int, per_batch: int, seed: int
) -> Iterator[tuple[bytes, dict[str, str]]]:
    rng = random.Random(seed)
    digests = ["sha256:" + f"{seed:04x}{i:060x}" for i in range(120)]
    clusters = ["aks-prod-weu-1", "gke-prod-use-1", "eks-staging-usw2-1"]
    for b in range(batches):
        events = []
        for i in range(per_batch):
            cluster = rng.choice(clusters)
            kind = "decommission" if rng.random() < 0.15 else "deployment"
            events.append(
                {
                    "specversion": "1.0",
                    "id": f"fault-{seed}-{b}-{i}",
                    "source": "//fault.test/monitor",
                    "type": f"dev.linkedartifacts.{kind}.v1",
                    "time": f"2026-05-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
                    "data": {
                        "digest": rng.choice(digests),
                        "logical_environment": cluster.split("-")[1],
                        "physical_environment": "r1",
                        "cluster": cluster,
                        "deployment_name": f"svc-{rng.randint(0, 30)}",
                        "runtime_risks": rng.sample(["internet-exposed", "sensitive-data"], rng.randint(0, 2)),
                    },
                }
            )
        yield (
            json.dumps(events).encode(),
            {"Content-Type": "application/cloudevents-batch+json", "Authorization": f"Bearer {token}"},
        )


async def _all_events(settings: Settings) -> list[ArtifactEvent]:
    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "artifact_event"),
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    return [codec.decode(v) for _, v in await _drain(settings, topics.events_topic(settings))]


async def _drain(settings: Settings, topic: str) -> list[tuple[str, bytes]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[tuple[str, bytes]] = []
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        while await behind():
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend((r.key.decode(), r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _sql(query_url: str, token: str, sql: str) -> list[list[Any]]:
    response = httpx.post(
        f"{query_url}/v1/sql",
        json={"sql": sql, "format": "json"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    response.raise_for_status()
    rows: list[list[Any]] = response.json()["rows"]
    return rows


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_worker_stopped_mid_batch_converges_to_the_crash_free_result(stack: Stack, tmp_path: Any, how: str) -> None:
    """SIGKILL: no flush, no commit, no goodbye. SIGTERM: Faust stops the agent mid-batch and commits what
    was acknowledged, so this one catches a batch acknowledged before it was fully handled."""
    settings = stack.settings.model_copy(
        update={
            "data_dir": tmp_path,
            "topic_prefix": f"fault-{how.lower()}.",
            "worker_id": f"fault-worker-{how.lower()}",
            "connectors_port": free_port(),
            "query_port": free_port(),
            "sink_flush_seconds": 0.3,
        }
    )
    bootstrap.bootstrap(settings)
    connectors = start_service(settings, "connectors", ready_path="/healthz", port=settings.connectors_port)
    worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
    tokens = {
        n: settings.secret(n) or ""
        for n in (
            "github_webhook_secret",
            "artifactory_secret",
            "metadata_write_token",
            "cloudevents_token",
            "scans_token",
            "attestations_token",
            "query_token",
        )
    }
    answers: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.connectors_port}", timeout=30) as client:
            for round_ in range(3):
                answers.extend(s for _, s, _ in post_all(client, story(tokens, tag=f"-r{round_}")))
                for body, headers in _cloudevent_batches(
                    tokens["cloudevents_token"], batches=10, per_batch=100, seed=round_
                ):
                    answers.append(client.post("/events/cloudevents", content=body, headers=headers).status_code)

    sender = threading.Thread(target=send)
    sender.start()
    rng = random.Random(7)
    kills = 0
    try:
        while sender.is_alive() or kills < 3:
            time.sleep(rng.uniform(0.5, 3.0))
            if how == "SIGKILL":
                worker.kill()
            else:
                worker.stop()
            kills += 1
            worker = start_service(settings, "worker", ready_path="/healthz", port=settings.query_port)
        sender.join()
        assert answers and all(s in (200, 202) for s in answers), sorted(set(answers))

        events = asyncio.run(_all_events(settings))
        distinct = {e.event_id for e in events}
        token = tokens["query_token"]

        def sunk() -> bool:
            rows = _sql(worker_url(settings), token, "SELECT count(), uniqExact(event_id) FROM events")
            return bool(rows[0][0] == len(distinct))

        _eventually(sunk, what="ClickHouse to hold every event")
        assert _sql(worker_url(settings), token, "SELECT count(), uniqExact(event_id) FROM events") == [
            [len(distinct), len(distinct)]
        ]

        _converge_published(settings, events, report=tmp_path / "published-diff.jsonl", logs=[worker.log_file])
        assert kills >= 3
    finally:
        worker.stop()
        connectors.stop()


def worker_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.query_port}"


def _published_states(settings: Settings) -> dict[str, LinkedArtifactState]:
    """The newest state of every digest on the enriched topic."""
    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "linked_artifact"),
        schema_name="linked_artifact",
        model=LinkedArtifactState,
    )
    latest = dict(asyncio.run(_drain(settings, topics.enriched_topic(settings))))  # the last value per key wins
    return {k: codec.decode(v) for k, v in latest.items()}


def _converge_published(
    settings: Settings,
    events: list[ArtifactEvent],
    *,
    report: Path,
    timeout: float = 120,
    logs: Sequence[Path] = (),
) -> None:
    """Wait until the enriched topic holds exactly the crash-free states; on timeout, write both sides of
    every differing digest to ``report`` and fail with a summary, so a rare miss can be diagnosed."""
    expected = {k: s for k, s in run_system(events, max_steps=10_000_000).items() if key_role(k) == "digest"}
    want = {k: state_fingerprint(s) for k, s in expected.items()}
    deadline = time.monotonic() + timeout
    while True:
        got = _published_states(settings)
        if {k: state_fingerprint(s) for k, s in got.items()} == want:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(1)
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    differ = sorted(k for k in set(got) & set(expected) if state_fingerprint(got[k]) != want[k])
    lines = []
    for k in differ:
        mine, theirs = got[k].model_dump(mode="json"), expected[k].model_dump(mode="json")
        fields = sorted(f for f in set(mine) | set(theirs) if mine.get(f) != theirs.get(f))
        lines.append(json.dumps({"key": k, "fields": fields, "published": mine, "expected": theirs}, default=str))
    lacking = {k: set(expected[k].event_ids) - set(got[k].event_ids) for k in differ}
    history = forensics.timeline(settings, differ + missing, lacking)
    located = forensics.where_events_are(settings, set().union(*lacking.values()))
    worker_lines = [
        f"{log.name}: {line}"
        for log in logs
        if log.is_file()
        for line in log.read_text(errors="replace").splitlines()
        if any(word in line for word in ("assigned partitions", "Discarded commit", "rewinding", "ERROR", "WARN"))
    ]
    report.write_text("\n".join([*lines, *map(json.dumps, located), *map(json.dumps, history), *worker_lines]))
    first = json.loads(lines[0])["fields"] if lines else []
    shown = "\n".join(json.dumps(row) for row in [*located, *history][:60])
    raise AssertionError(
        f"published states never equalled the crash-free states: {len(missing)} digests missing, "
        f"{len(extra)} unexpected, {len(differ)} differ (first differs in {first}); details in {report}\n"
        f"lacking: { {k: sorted(v) for k, v in lacking.items()} }\n{shown}\n" + "\n".join(worker_lines[-30:])
    )


def _eventually(check: Any, *, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")
