"""End to end: canonical events posted over HTTP until ClickHouse holds them all, with consumer lag over
time, against two Faust reference points measured on the same events in the same run.

    .venv/bin/python -m bench.pipeline_e2e [--events 50000] [--concurrency 8]

What runs: an isolated `linked-artifacts up` (its own ports and data directory), then

1. live: ``--events`` events posted through batch-capable endpoints (Grype reports with ``--findings``
   alerts each; CloudEvents batches of ``--ce-batch`` deployment events across many digests and slots), so
   HTTP is not the bottleneck. Every ``--sample`` seconds: end offsets of the events and derived topics,
   committed offsets of the worker's group (``<worker_id>``, Faust) and the sink's group
   (``<worker_id>-clickhouse-sink``), and the worker's /metrics (rows the sink inserted). Done when the
   worker has committed every event and every derived message, and ClickHouse holds every event;
2. references, each a separate process reading the same events topic from offset 0 with a fresh group
   (bench/faust_reference.py), one after another once the live run has finished:
   (c) a plain Faust agent that only counts; (d) a naive Faust join, one ``table[key] = state`` per event;
   (a') the real worker replaying the backlog (no HTTP, no sink), which is the linker's own capacity; and
   (e) the same with the worker's ClickHouse sink into a ClickHouse of its own: the whole worker;
3. a quiet stream: single events one at a time, each timed from the connector's acknowledgement until the
   live worker's state has it (the latency its batching adds when nothing else waits).

Figures: (a) pipeline = events / time from the first request until the worker committed everything;
(b) sink = events / time until ClickHouse held them all; both include the HTTP ingest they overlap with.
(c), (d), (a'), (e) = events / time from their first record (before any work on it) to their last (their
start-up is reported apart).
Aims per worker: >= 2,500 events/s, >= 3 x (d), >= 0.5 x (c); shown for (a), (a') and (e).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import _harness as h
from bench._payloads import BatchPlan, Request, Signer, batch_workload, cloudevent_deployment, digest
from linked_artifacts import topics

REQUEST_TIMEOUT_S = 60.0
AIM_EVENTS_PER_S = 2_500
AIM_VS_NAIVE = 3.0
AIM_VS_PLAIN = 0.5
QUIET_PROBES = 10
QUIET_POLL_S = 0.01
QUIET_GAP_S = 0.5
QUIET_TIMEOUT_S = 15.0
REFERENCE_MODES = ("count", "count-direct", "naive", "naive-gc", "replay", "replay-default-gc", "replay-sink")


@dataclass
class Sample:
    t: float  # seconds since the first request
    acked: int  # events the connectors acknowledged (2xx) so far
    events_end: int  # end offsets of the events topic
    worker: int  # worker group's committed offsets on the events topic
    derived_end: int
    derived_committed: int
    sink: int  # sink group's committed offsets on the events topic
    sink_rows: int  # rows the sink inserted (la_sink_rows)
    sink_batches: int
    processed: int  # records the linker processed (events + derived; la_worker_records_processed)

    @property
    def worker_lag(self) -> int:
        return self.events_end - self.worker

    @property
    def derived_lag(self) -> int:
        return self.derived_end - self.derived_committed

    @property
    def sink_lag(self) -> int:
        return self.events_end - self.sink


@dataclass
class Live:
    requests: int = 0
    failed: list[str] = field(default_factory=list)
    acked: int = 0
    latencies: list[float] = field(default_factory=list)
    ingest_done: float | None = None
    worker_done: float | None = None
    sink_done: float | None = None
    samples: list[Sample] = field(default_factory=list)
    metrics_error: str | None = None
    # The live worker's hand-overs of fetched records to its stream: directly, or after a wait (a full buffer).
    handovers: dict[str, int] = field(default_factory=dict)


def _accepted(body: bytes) -> int:
    try:
        return int(json.loads(body).get("accepted", 0))
    except (ValueError, AttributeError):
        return 0


async def post_all(post: h.Post, requests: Sequence[Request], concurrency: int, live: Live, t0: float) -> None:
    feed = iter(requests)

    async def lane() -> None:
        for req in feed:
            started = time.perf_counter()
            try:
                status, body = await post(req.path, req.body, req.headers)
            except h.CLIENT_ERRORS as exc:
                live.failed.append(f"{req.kind}: {exc!r}")
                continue
            live.requests += 1
            if status >= 300:
                live.failed.append(f"{req.kind}: {status} {body[:200]!r}")
                continue
            live.latencies.append(time.perf_counter() - started)
            live.acked += _accepted(body)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    live.ingest_done = time.perf_counter() - t0


async def sample_until_done(system: h.System, probe: h.OffsetProbe, live: Live, *, t0: float,
                            interval: float, deadline: float) -> None:
    events_topic, derived_topic = topics.events_topic(system.settings), topics.derived_topic(system.settings)
    worker_group, sink_group = system.worker_id, f"{system.worker_id}-clickhouse-sink"
    async with httpx.AsyncClient() as client:
        while time.perf_counter() < deadline:
            await asyncio.sleep(interval)
            if not system.alive():
                raise RuntimeError("the system stopped during the run:\n" + "\n".join(list(system.tail)[-30:]))
            try:
                metrics = await h.worker_metrics(client, system.query_url)
            except (httpx.HTTPError, ValueError) as exc:
                live.metrics_error, metrics = repr(exc), {}
            worker, sink = await probe.committed(worker_group), await probe.committed(sink_group)
            s = Sample(
                t=time.perf_counter() - t0, acked=live.acked, events_end=await probe.end(events_topic),
                worker=worker.get(events_topic, 0), derived_end=await probe.end(derived_topic),
                derived_committed=worker.get(derived_topic, 0), sink=sink.get(events_topic, 0),
                sink_rows=int(metrics.get("la_sink_rows", 0)), sink_batches=int(metrics.get("la_sink_batches", 0)),
                processed=int(metrics.get("la_worker_records_processed", 0)),
            )
            live.samples.append(s)
            for path in ("direct", "waited"):
                if (count := metrics.get(f'la_worker_record_handovers{{path="{path}"}}')) is not None:
                    live.handovers[path] = int(count)
            # Everything acknowledged is on the topic; its end offset is the count to reach (the topic is
            # fresh, so offsets are counts; a failed request may have left a few records there too).
            target = max(s.events_end, live.acked)
            if live.ingest_done is None:
                continue
            if live.worker_done is None and s.worker >= target and s.derived_lag == 0:
                live.worker_done = s.t
            if live.sink_done is None and s.sink_rows >= target:
                live.sink_done = s.t
            if live.worker_done is not None and live.sink_done is not None:
                return


def _first_number(value: Any) -> int | None:
    """The first integer in a JSON answer, whatever shape /v1/sql gives its one-cell result."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for item in items:
        found = _first_number(item)
        if found is not None:
            return found
    return None


def clickhouse_count(system: h.System) -> tuple[int | None, str]:
    """``SELECT count() FROM events`` through the query API (the worker owns chDB), if it serves SQL."""
    try:
        response = httpx.post(f"{system.query_url}/v1/sql", timeout=30.0,
                              headers={"Authorization": f"Bearer {system.token('query_token')}"},
                              json={"sql": "SELECT count() AS n FROM events", "format": "json"})
    except httpx.HTTPError as exc:
        return None, f"/v1/sql unreachable: {exc!r}"
    if response.status_code != 200:
        return None, f"/v1/sql answered {response.status_code}: {response.text[:120]}"
    return _first_number(response.json()), "/v1/sql"


# --- references ------------------------------------------------------------------------------------------
def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def reference_env(system: h.System) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINKED_ARTIFACTS_")}
    s = system.settings
    env.update({
        "LINKED_ARTIFACTS_DATA_DIR": str(system.data_dir),
        "LINKED_ARTIFACTS_CONFIG": str(system.data_dir / "no-config.toml"),
        "LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS": s.kafka_servers,
        "LINKED_ARTIFACTS_REGISTRY_URL": s.schema_registry_url,
        "LINKED_ARTIFACTS_TOPIC_PREFIX": s.topic_prefix,
        "LINKED_ARTIFACTS_TOPIC_PARTITIONS": str(s.topic_partitions),
        "LINKED_ARTIFACTS_LOG_LEVEL": "WARNING",
    })
    env.update(system.override_env())
    return env


def run_reference(system: h.System, mode: str, *, run: str, expect: int, timeout: float) -> dict[str, Any]:
    app_id = f"bench-{mode}-{run}"
    log_path = system.data_dir / "logs" / f"reference-{mode}.log"
    result_path = system.data_dir / f"reference-{mode}.json"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    h.say(f"reference {mode}: {app_id} reads {expect:,} events from offset 0")
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.faust_reference", "--mode", mode, "--app-id", app_id,
             "--expect", str(expect), "--datadir", str(system.data_dir / f"reference-{mode}"),
             "--result", str(result_path)],
            cwd=h.REPO, env=reference_env(system), stdout=log, stderr=subprocess.STDOUT)
        cpu = h.CpuMeter(system.processes())
        children_before = _children_cpu()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its pid
            proc.wait(timeout=30)
    spent = cpu.lap()
    # The child is reaped by now, so its CPU time is in our children's rusage, not in /proc.
    spent[mode] = round(_children_cpu() - children_before, 2)
    spent["other"] = round(max(0.0, spent["other"] - spent[mode]), 2)
    wall = time.perf_counter() - started
    if not result_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        h.say(f"  reference {mode} read nothing within {timeout:.0f}s; log {log_path}:\n  " + "\n  ".join(tail))
        return {"mode": mode, "app_id": app_id, "finished": False, "wall_seconds": wall, "cpu": spent}
    found: dict[str, Any] = json.loads(result_path.read_text())
    partial = "" if found["finished"] else f" (stopped at the {timeout:.0f}s deadline: a rate over a partial run)"
    h.say(f"  {found['events']:,} events in {found['consume_seconds']:.1f}s = {found['events_per_s'] or 0:,.0f} "
          f"events/s (start-up {found['startup_seconds']:.1f}s, {found['cpu_seconds']:.1f}s CPU while consuming, "
          f"peak RSS {found.get('max_rss_mib', 0):,.0f} MiB)"
          + partial)
    if found.get("stored") is not None:
        later = found.get("linker_first_after_s")
        h.say(f"  state, changelog and enriched topic done after {found['linker_seconds'] or 0:.1f}s; ClickHouse held "
              f"{found['stored']:,} events after {found['sink_seconds'] or 0:.1f}s"
              + (f"; the linker's first record came {later:.1f}s after the sink's" if later is not None else ""))
    if handovers := found.get("handovers"):
        # Waited hand-overs met a full stream buffer (or a paused flow): fetching ran ahead of the agent.
        h.say(f"  {found['batches']:,} batches; fetched records handed over directly {handovers['direct']:,}, "
              f"after a wait {handovers['waited']:,}")
    h.say("  " + h.describe_cpu(spent, wall))
    return found | {"wall_seconds": wall, "cpu": spent}


# --- the run ---------------------------------------------------------------------------------------------
async def live_run(system: h.System, args: argparse.Namespace, run: str) -> tuple[Live, dict[str, Any]]:
    signer = Signer({n: system.token(n) for n in ("scans_token", "cloudevents_token")})
    plan = BatchPlan(events=args.events, findings=args.findings, deployments=args.deployments,
                     ce_batch=args.ce_batch)
    requests, expect = batch_workload(signer, run, plan, seed=args.seed)
    workload = {"events": expect, "requests": len(requests), "digests": plan.digests, "apps": plan.apps,
                "findings_per_digest": plan.findings, "deployments_per_digest": plan.deployments,
                "ce_batch": plan.ce_batch, "body_mib": round(sum(len(r.body) for r in requests) / 2**20, 1)}
    h.say(f"workload: {expect:,} events in {len(requests):,} requests ({plan.digests:,} digests x "
          f"({plan.findings} Grype findings + {plan.deployments} deployments), {plan.apps} apps, CloudEvents "
          f"batches of {plan.ce_batch}; {workload['body_mib']} MiB of bodies)")
    live = Live()
    probe = h.OffsetProbe(system.kafka_servers)
    await probe.start()
    cpu = h.CpuMeter(system.processes())
    try:
        async with h.http_client(args.client, system.connectors_url, concurrency=args.concurrency,
                                 timeout=REQUEST_TIMEOUT_S) as post:
            t0 = time.perf_counter()
            sampler = asyncio.create_task(sample_until_done(
                system, probe, live, t0=t0, interval=args.sample, deadline=t0 + args.timeout))
            await post_all(post, requests, args.concurrency, live, t0)
            ingest_cpu = cpu.lap()
            h.say(f"ingest done: {live.acked:,} events acknowledged in {live.ingest_done:.1f}s; "
                  + h.describe_cpu(ingest_cpu, live.ingest_done or 1.0))
            await sampler
        drain_cpu = cpu.lap()
    finally:
        await probe.stop()
    end = live.samples[-1].t if live.samples else 0.0
    def at(t: float | None) -> str:
        return f"{t:.1f}s" if t is not None else f"not within {args.timeout:.0f}s"

    h.say(f"live run done: worker {at(live.worker_done)}, ClickHouse {at(live.sink_done)}; "
          + h.describe_cpu(drain_cpu, max(end - (live.ingest_done or 0.0), 0.1)) + " (after ingest)")
    return live, {"workload": workload, "cpu_ingest": ingest_cpu, "cpu_after_ingest": drain_cpu}


async def quiet_latency(system: h.System, run: str, probes: int) -> dict[str, Any]:
    """A quiet stream: one deployment event at a time, for a digest never seen before, each posted once the
    previous one is in the worker's state and a pause has passed. The figure is the time from the
    connector's acknowledgement until the worker's ``/v1/state`` has the digest (polled every 10 ms): what
    the worker's batching adds to an event's latency when nothing else is waiting."""
    signer = Signer({n: system.token(n) for n in ("scans_token", "cloudevents_token")})
    auth = {"Authorization": f"Bearer {system.token('query_token')}"}
    seconds: list[float] = []
    missed = 0
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        for i in range(probes):
            await asyncio.sleep(QUIET_GAP_S)
            request = cloudevent_deployment(signer, f"{run}-quiet", i)
            response = await client.post(system.connectors_url + request.path, content=request.body,
                                         headers=request.headers)
            response.raise_for_status()
            acked = time.perf_counter()
            url = f"{system.query_url}/v1/state/{digest(f'{run}-quiet', 'ce', i)}"
            while time.perf_counter() - acked < QUIET_TIMEOUT_S:
                if (await client.get(url, headers=auth)).status_code == 200:
                    seconds.append(time.perf_counter() - acked)
                    break
                await asyncio.sleep(QUIET_POLL_S)
            else:
                missed += 1
    found = h.latency_summary(seconds) | {"missed": missed}
    h.say(f"quiet stream: event acknowledged -> in the worker's state, {len(seconds)} events one at a time: "
          f"p50 {found['p50_ms']:,.0f} ms, max {found['max_ms']:,.0f} ms"
          + (f"; {missed} not within {QUIET_TIMEOUT_S:.0f}s" if missed else ""))
    return found


def median_run(found: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower middle one of an even count), with every round's rate."""
    ordered = sorted(found, key=lambda r: r.get("events_per_s") or 0.0)
    return ordered[(len(ordered) - 1) // 2] | {"round_rates": [r.get("events_per_s") for r in found]}


def round_ratios(runs: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[list[Any]]]:
    """Per round: each reference's rate, and the replays (without and with the sink) against the naive join
    and the plain agent."""
    def at(mode: str, n: int) -> float | None:
        found = runs.get(mode, [])
        return found[n].get("events_per_s") if n < len(found) else None

    def ratio(a: float | None, b: float | None) -> Any:
        return a / b if a and b else "n/a"

    whole = "replay-sink" in runs
    headers = ["round", "(c) plain", "(d) naive", "(a') replay", "x naive", "x plain"]
    if whole:
        headers += ["(e) whole worker", "x naive", "x plain"]
    rows = []
    for n in range(max((len(r) for r in runs.values()), default=0)):
        count, naive, replay = at("count", n), at("naive", n), at("replay", n)
        row = [n + 1, count or "n/a", naive or "n/a", replay or "n/a", ratio(replay, naive), ratio(replay, count)]
        if whole:
            full = at("replay-sink", n)
            row += [full or "n/a", ratio(full, naive), ratio(full, count)]
        rows.append(row)
    return headers, rows


def rate(events: int, seconds: float | None) -> float | None:
    return events / seconds if seconds else None


def busy_rate(samples: Sequence[Sample]) -> float | None:
    """The worker's own pace: events it committed per second from its first commit to its last."""
    first = next((s for s in samples if s.worker > 0), None)
    last = next((s for s in reversed(samples) if first is not None and s.worker > first.worker), None)
    if first is None or last is None:
        return None
    top = next(s for s in samples if s.worker == last.worker)  # the sample where it got there
    return (top.worker - first.worker) / (top.t - first.t) if top.t > first.t else None


def figures(live: Live, refs: dict[str, dict[str, Any]], expect: int) -> dict[str, Any]:
    e2e = max(live.worker_done or 0, live.sink_done or 0) if live.worker_done and live.sink_done else None
    last = live.samples[-1] if live.samples else None
    # A stage that missed the deadline was not done after last.t seconds: expect / last.t bounds its rate
    # from above (the table prints "<=").
    pipeline = rate(expect, live.worker_done) if live.worker_done else rate(expect, last.t) if last else None
    sink = rate(expect, live.sink_done) if live.sink_done else rate(expect, last.t) if last else None
    out: dict[str, Any] = {
        "ingest_events_per_s": rate(live.acked, live.ingest_done),
        "pipeline_events_per_s": pipeline,
        "pipeline_partial": live.worker_done is None,
        "pipeline_busy_events_per_s": busy_rate(live.samples),
        "sink_events_per_s": sink,
        "sink_partial": live.sink_done is None,
        "end_to_end_seconds": e2e,
        "end_to_end_events_per_s": rate(expect, e2e),
    }
    for mode, key in (("count", "plain_agent"), ("count-direct", "plain_agent_direct"),
                      ("naive", "naive_join"), ("naive-gc", "naive_join_tuned_gc"),
                      ("replay", "worker_replay"), ("replay-default-gc", "worker_replay_default_gc"),
                      ("replay-sink", "whole_worker_replay")):
        out[f"{key}_events_per_s"] = refs.get(mode, {}).get("events_per_s")
        out[f"{key}_partial"] = not refs.get(mode, {}).get("finished", False)
    # The replays against the references of their own round, the median over rounds: a round pairs runs made
    # minutes apart, while the median of each figure may come from different rounds (different moments).
    for mode, key in (("replay", "worker_replay"), ("replay-sink", "whole_worker_replay")):
        for reference, against in (("naive", "naive"), ("count", "plain")):
            mine, theirs = refs.get(mode, {}).get("round_rates", []), refs.get(reference, {}).get("round_rates", [])
            ratios = sorted(a / b for a, b in zip(mine, theirs, strict=False) if a and b)
            out[f"{key}_vs_{against}_in_round"] = ratios[(len(ratios) - 1) // 2] if ratios else None
    return out


def aims(f: dict[str, Any]) -> list[list[Any]]:
    """Each figure against the aims. The replays' ratios are the median of their rounds' own (the lower middle
    one); the live run, run once, is set against the references' medians."""
    rows = []
    live = "(a) pipeline, live" + (" (<=)" if f["pipeline_partial"] else "")
    whole = "whole_worker_replay"
    for label, value, key in ((live, f["pipeline_events_per_s"], None),
                              ("(a') worker replay", f["worker_replay_events_per_s"], "worker_replay"),
                              ("(e) whole worker replay", f[f"{whole}_events_per_s"], whole)):
        if value is None:
            continue
        naive, plain = f["naive_join_events_per_s"], f["plain_agent_events_per_s"]
        vs_naive = f.get(f"{key}_vs_naive_in_round") if key else None
        vs_plain = f.get(f"{key}_vs_plain_in_round") if key else None
        vs_naive = vs_naive if vs_naive is not None else value / naive if naive else None
        vs_plain = vs_plain if vs_plain is not None else value / plain if plain else None
        rows.append([label, value, "yes" if value >= AIM_EVENTS_PER_S else "NO",
                     vs_naive if vs_naive is not None else "n/a",
                     ("yes" if vs_naive >= AIM_VS_NAIVE else "NO") if vs_naive is not None else "",
                     vs_plain if vs_plain is not None else "n/a",
                     ("yes" if vs_plain >= AIM_VS_PLAIN else "NO") if vs_plain is not None else ""])
    return rows


def report(result: dict[str, Any]) -> None:
    f, live = result["figures"], result["live"]

    def show(value: float | None) -> Any:
        return value if value is not None else "n/a"

    h.say("")
    h.say("consumer lag over time (events; derived = the worker's cross-key messages):")
    samples = live["samples"]
    step = max(1, len(samples) // 25)
    picked = samples[::step] + ([samples[-1]] if samples and (len(samples) - 1) % step else [])
    h.say(h.table(["t s", "acked", "topic end", "worker lag", "derived lag", "sink lag", "CH rows"],
                  [[s["t"], s["acked"], s["events_end"], s["events_end"] - s["worker"],
                    s["derived_end"] - s["derived_committed"], s["events_end"] - s["sink"], s["sink_rows"]]
                   for s in picked]))
    h.say("")
    n = result["expect"]
    refs = result["references"]

    def ref_row(label: str, mode: str, key: str) -> list[Any]:
        ref = refs.get(mode, {})
        return [label + (" [partial]" if ref and not ref.get("finished") else ""), ref.get("events", "n/a"),
                show(ref.get("consume_seconds")), show(f[f"{key}_events_per_s"])]

    last = samples[-1] if samples else None

    def live_row(label: str, done: float | None, value: float | None) -> list[Any]:
        if done is not None or last is None or value is None:
            return [label, n, show(done), show(value)]
        return [label + " [not done]", n, f"> {last['t']:.0f}", f"<= {value:,.1f}"]

    h.say(h.table(["figure", "events", "seconds", "events/s"], [
        ["HTTP ingest (connectors acked)", live["acked"], show(live["ingest_done"]), show(f["ingest_events_per_s"])],
        live_row("(a) pipeline: worker committed all", live["worker_done"], f["pipeline_events_per_s"]),
        ["    its pace on events (first to last commit)", "", "", show(f["pipeline_busy_events_per_s"])],
        live_row("(b) sink: ClickHouse holds all", live["sink_done"], f["sink_events_per_s"]),
        live_row("end to end (HTTP -> ClickHouse + state)", f["end_to_end_seconds"],
                 f["end_to_end_events_per_s"] or (n / last["t"] if last else None)),
        ref_row("(c) reference: plain Faust agent", "count", "plain_agent"),
        *([ref_row("(c') plain agent, the worker's consumer", "count-direct", "plain_agent_direct")]
          if "count-direct" in refs else []),
        ref_row("(d) reference: naive Faust join", "naive", "naive_join"),
        *([ref_row("(d') naive join, worker's GC tuning", "naive-gc", "naive_join_tuned_gc")]
          if "naive-gc" in refs else []),
        ref_row("(a') worker replay from backlog", "replay", "worker_replay"),
        *([ref_row("(a'') replay, CPython's default GC", "replay-default-gc", "worker_replay_default_gc")]
          if "replay-default-gc" in refs else []),
        *([ref_row("(e) whole worker from backlog, + ClickHouse", "replay-sink", "whole_worker_replay")]
          if "replay-sink" in refs else []),
    ]))
    if last is not None and (f["pipeline_partial"] or f["sink_partial"]):
        h.say(f"[not done]: at the {last['t']:.0f}s deadline the worker still lagged by "
              f"{last['events_end'] - last['worker']:,} events and {last['derived_end'] - last['derived_committed']:,} "
              f"derived messages, the sink by {last['events_end'] - last['sink']:,} events")
    if any(not r.get("finished") for r in refs.values()):
        h.say("[partial]: a reference stopped at its deadline; its rate is over the events it consumed")
    if max((len(r) for r in result.get("reference_rounds", {}).values()), default=0) > 1:
        h.say("")
        h.say("reference rounds (the figures above are each reference's median round):")
        h.say(h.table(*round_ratios(result["reference_rounds"])))
    h.say("")
    rows = aims(f)
    if rows:
        h.say(h.table(["aims (per worker)", "events/s", f">= {AIM_EVENTS_PER_S:,}", "x naive", f">= {AIM_VS_NAIVE:g}x",
                       "x plain", f">= {AIM_VS_PLAIN:g}x"], rows))
    extra = result["checks"]
    h.say(f"checks: events topic end {extra['events_topic_end']:,}, ClickHouse count {extra['clickhouse_count']} "
          f"({extra['clickhouse_count_source']}), sink inserts {extra['sink_batches']:,} "
          f"(~{extra['rows_per_insert']:.0f} rows each), request p50/p99 "
          f"{live['request_latency']['p50_ms']:.0f}/{live['request_latency']['p99_ms']:.0f} ms, "
          f"failed requests {len(live['failed'])}")
    if handovers := live.get("handovers"):
        h.say(f"live worker: fetched records handed over directly {handovers.get('direct', 0):,}, after a wait "
              f"{handovers.get('waited', 0):,}")
    if quiet := result.get("quiet_latency"):
        h.say(f"quiet stream: acknowledged -> in the worker's state p50 {quiet['p50_ms']:,.0f} ms, "
              f"max {quiet['max_ms']:,.0f} ms ({quiet['count']} events one at a time, {quiet['missed']} missed)")
    for line in live["failed"][:5]:
        h.say(f"failure: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="canonical events to post (default 50000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--ce-batch", type=int, default=400, help="deployment events per CloudEvents batch")
    parser.add_argument("--findings", type=int, default=12, help="alerts per Grype report (one per digest)")
    parser.add_argument("--deployments", type=int, default=8, help="deployment events per digest")
    parser.add_argument("--sample", type=float, default=0.5, help="seconds between lag samples")
    # Deadlines keep a default run under ~10 minutes however slow a stage is; a stage that misses one is
    # reported [partial] with its rate over what it got through.
    parser.add_argument("--timeout", type=float, default=270.0, help="longest live run in seconds (270)")
    parser.add_argument("--ref-timeout", type=float, default=90.0, help="longest reference run in seconds (90)")
    parser.add_argument("--references", default="count,naive,replay,replay-sink",
                        help="comma-separated reference runs: count, count-direct (count on the worker's Faust "
                             "consumer), naive, naive-gc (naive with the worker's garbage-collector tuning), replay, "
                             "replay-default-gc, replay-sink (the whole worker: replay with its ClickHouse sink) "
                             "('' for none)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the references, interleaved; each figure is the median round (default 1)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--client", default="aiohttp", choices=["aiohttp", "httpx"])
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--keep", action="store_true", help="keep the system's data directory")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the system and the references (repeatable), e.g. "
                        "--set worker_batch_events=5000 --set worker_batch_seconds=0.25")
    args = parser.parse_args()
    modes = [m for m in args.references.split(",") if m]
    if not 0 < args.events <= 2_000_000 or not 0 < args.rounds <= 9 or any(m not in REFERENCE_MODES for m in modes):
        parser.error(f"--events must be 1..2000000, --rounds 1..9; --references takes {', '.join(REFERENCE_MODES)}")

    run = uuid.uuid4().hex[:8]
    system = h.System(keep=args.keep, log_level=args.log_level, overrides=h.parse_overrides(args.set))
    with system:
        info = h.machine(system)
        h.say(h.describe_machine(info))
        live, extra = asyncio.run(live_run(system, args, run))
        probe_end = asyncio.run(_events_end(system))
        expect = probe_end  # what the topic holds: the planned events, unless a request failed
        count, source = clickhouse_count(system)
        # The topic holds every event once ingest is done, whether or not the live worker caught up.
        pause = live.worker_done is None and bool(modes)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        with paused_worker(system, paused=pause):
            # Rounds interleave the references, so a drift in the machine's speed (it moves by ~40% within
            # minutes on a shared host) reaches every reference alike, and each round's ratios pair runs
            # made minutes apart at most.
            for n in range(args.rounds):
                for mode in modes:
                    runs[mode].append(run_reference(system, mode, run=run if n == 0 else f"{run}-r{n + 1}",
                                                    expect=probe_end, timeout=args.ref_timeout))
        refs = {mode: median_run(found) for mode, found in runs.items()}
        # After the references, so their events are the workload's alone; only on a worker that caught up.
        quiet = asyncio.run(quiet_latency(system, run, QUIET_PROBES)) if live.worker_done is not None else None
    last = live.samples[-1] if live.samples else None
    result: dict[str, Any] = {
        "benchmark": "pipeline_e2e", "finished_at": datetime.now(UTC).isoformat(), "machine": info,
        "system_start_seconds": system.start_seconds, "run": run,
        "parameters": {k: v for k, v in vars(args).items() if k != "keep"},
        "expect": expect, **extra,
        "live": {"requests": live.requests, "failed": live.failed[:20], "acked": live.acked,
                 "ingest_done": live.ingest_done, "worker_done": live.worker_done, "sink_done": live.sink_done,
                 "request_latency": h.latency_summary(live.latencies), "metrics_error": live.metrics_error,
                 "handovers": live.handovers,
                 "samples": [asdict(s) for s in live.samples]},
        "references": refs,
        "reference_rounds": runs,
        "live_worker_paused_during_references": pause,
        "quiet_latency": quiet,
        "checks": {"events_topic_end": probe_end, "clickhouse_count": count, "clickhouse_count_source": source
                   if count is not None else f"la_sink_rows metric; {source}",
                   "sink_batches": last.sink_batches if last else 0,
                   "rows_per_insert": (last.sink_rows / last.sink_batches) if last and last.sink_batches else 0.0},
    }
    if count is None and last is not None:
        result["checks"]["clickhouse_count"] = last.sink_rows
    result["figures"] = figures(live, refs, expect)
    report(result)
    h.say("")
    h.say(h.describe_machine(info))
    h.say(f"result: {h.write_result('pipeline_e2e', result)}")


@contextlib.contextmanager
def paused_worker(system: h.System, *, paused: bool) -> Iterator[None]:
    """SIGSTOP the live worker while the references run, when it has not caught up: otherwise it keeps
    working through its backlog on the same cores and the references measure a shared machine."""
    running = system.processes()
    pids = [running[name] for name in ("worker", "linker") if name in running] if paused else []
    if not pids:
        yield
        return
    h.say(f"the live worker has not caught up; pausing it (pids {', '.join(map(str, pids))}) while the references run")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)  # before `up` stops it: a stopped process cannot handle SIGTERM


async def _events_end(system: h.System) -> int:
    probe = h.OffsetProbe(system.kafka_servers)
    await probe.start()
    try:
        return await probe.end(topics.events_topic(system.settings))
    finally:
        await probe.stop()


if __name__ == "__main__":
    main()
