"""Two workers share the partitions: one joins while events flow, then the other stops, and the
partitions move without losing or doubling any state."""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Any

import httpx
import pytest

from linked_artifacts import bootstrap
from tests.conftest import Stack, free_port, start_service
from tests.fault.test_worker_crashes import _all_events, _cloudevent_batches, _converge_published, _eventually, _sql
from tests.integration.e2e_story import post_all, story

pytestmark = pytest.mark.fault


def _owned(port: int) -> set[int]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {int(p) for p in re.findall(r'la_worker_partition_assigned\{partition="(\d+)"\} 1\.0', text)}


def _commit_lags(port: int) -> list[float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return [float(v) for v in re.findall(r"la_worker_partition_commit_lag\{[^}]*\} ([0-9.e+]+)", text)]


def test_partitions_move_between_two_workers_without_losing_or_doubling_state(stack: Stack, tmp_path: Any) -> None:
    base = stack.settings.model_copy(
        update={
            "data_dir": tmp_path / "a",
            "topic_prefix": "rebalance.",
            "worker_id": "rebalance-worker",
            "connectors_port": free_port(),
            "query_port": free_port(),
            "sink_flush_seconds": 0.3,
        }
    )
    second = base.model_copy(update={"data_dir": tmp_path / "b", "query_port": free_port()})
    bootstrap.bootstrap(base)
    connectors = start_service(base, "connectors", ready_path="/healthz", port=base.connectors_port)
    worker_a = start_service(base, "worker", ready_path="/healthz", port=base.query_port)
    worker_b = None
    tokens = {
        n: base.secret(n) or ""
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
    statuses: list[int] = []

    def send(round_: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{base.connectors_port}", timeout=30) as client:
            statuses.extend(s for _, s, _ in post_all(client, story(tokens, tag=f"-b{round_}")))
            for body, headers in _cloudevent_batches(
                tokens["cloudevents_token"], batches=6, per_batch=100, seed=100 + round_
            ):
                statuses.append(client.post("/events/cloudevents", content=body, headers=headers).status_code)

    try:
        _eventually(lambda: len(_owned(base.query_port)) == base.topic_partitions, what="worker A to own all")
        sender = threading.Thread(target=send, args=(1,))
        sender.start()
        # B joins while events flow (A keeps the ClickHouse sink; B shares the stream processing).
        worker_b = start_service(second, "worker", "--no-sink", ready_path="/healthz", port=second.query_port)
        worker_b_log = worker_b.log_file
        _eventually(
            lambda: (
                _owned(base.query_port)
                and _owned(second.query_port)
                and _owned(base.query_port) | _owned(second.query_port) == set(range(base.topic_partitions))
                and not _owned(base.query_port) & _owned(second.query_port)
            ),
            what="the partitions to be split between A and B",
        )
        split = (_owned(base.query_port), _owned(second.query_port))
        sender.join()
        send(2)
        # B leaves; its partitions move back to A, which must rebuild B's keys from the changelog.
        worker_b.stop()
        worker_b = None
        _eventually(lambda: len(_owned(base.query_port)) == base.topic_partitions, what="A to own all again")
        send(3)
        assert statuses and all(s in (200, 202) for s in statuses), sorted(set(statuses))

        events = asyncio.run(_all_events(base))
        distinct = {e.event_id for e in events}
        logs = [base.data_dir / "logs" / f"worker-{base.query_port}.log", worker_b_log]
        _converge_published(base, events, report=tmp_path / "published-diff.jsonl", logs=logs)
        _eventually(
            lambda: (
                _sql(
                    f"http://127.0.0.1:{base.query_port}",
                    tokens["query_token"],
                    "SELECT count(), uniqExact(event_id) FROM events",
                )
                == [[len(distinct)] * 2]
            ),
            what="ClickHouse to hold every event exactly once",
        )
        # Every record handled is committed too: no partition's commit stays behind (a dropped record
        # would hold it, pipeline/offsets.py).
        _eventually(
            lambda: (lags := _commit_lags(base.query_port)) != [] and not any(lags),
            what="worker A's commits to catch up on every partition",
        )
        assert split[0] and split[1]
    finally:
        if worker_b is not None:
            worker_b.stop()
        worker_a.stop()
        connectors.stop()
