"""Webhook ingest: requests/s, events/s and per-request latency of the connectors, against a raw aiokafka
producer sending the same records in the same run.

    .venv/bin/python -m bench.webhook_ingest [--requests 20000] [--concurrency 16]

What runs: an isolated `linked-artifacts up` (its own ports and data directory). Then

1. warm-up: ``--warmup`` requests through HTTP and as raw sends (JIT of the broker, connections,
   schema ids), not counted;
2. baseline: the events the requests carry, parsed locally by the connectors' own parsers and Avro-encoded
   with the real registry *before* timing, sent by one idempotent ``acks=all`` producer to a scratch topic.
   One unit is one request's records, sent with ``send_and_wait`` each and awaited together, which is what
   the connectors do per request; ``--concurrency`` units in flight;
3. HTTP: ``--requests`` signed requests (GitHub registry_package, Artifactory docker pushed, CloudEvents
   deployment, metadata API deployment record; a quarter each, shuffled) with ``--concurrency`` in flight.

The worker keeps running (it is part of the service) and consumes what HTTP ingests, so during the HTTP
phase it competes for the same cores; the CPU lines say who used what ("other" is the rest of the machine).
The load generator runs here too, on aiohttp by default: httpx costs ~20x more CPU per request, which on a
small machine would be taken from the service under test (``--client httpx`` to see it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import _harness as h
from bench._payloads import Request, Signer, webhook_mix
from connectors.app import load_parsers
from connectors.base import Delivery
from connectors.endpoints import endpoint_for_path
from connectors.publisher import LINGER_MS, MAX_REQUEST_BYTES
from linked_artifacts import bootstrap
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent

# A request that takes longer than this is counted as failed: GitHub itself gives up after 10 s.
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Outcome:
    kind: str
    ok: bool
    seconds: float
    events: int
    detail: str = ""


@dataclass(frozen=True)
class Unit:
    """One request's records, ready for the raw producer."""

    records: tuple[tuple[bytes, bytes, list[tuple[str, bytes]]], ...]


async def run_bounded(items: Sequence[Any], concurrency: int,
                      call: Callable[[Any], Awaitable[Outcome]]) -> tuple[list[Outcome], float]:
    """Run ``call`` over ``items`` with at most ``concurrency`` in flight; returns outcomes and wall time."""
    outcomes: list[Outcome] = []
    feed = iter(items)

    async def lane() -> None:
        # One shared iterator: a lane takes the next item as soon as it is free.
        outcomes.extend([await call(item) for item in feed])

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


def events_in(body: bytes) -> int:
    """Events a 2xx answer reports: 202 ``{"accepted": n, ...}``, or the metadata API's ``total_count``."""
    try:
        answer = json.loads(body)
    except ValueError:
        return 0
    if "accepted" in answer:
        return int(answer["accepted"])
    return int(answer.get("total_count", 0))


def http_call(post: h.Post) -> Callable[[Request], Awaitable[Outcome]]:
    async def call(req: Request) -> Outcome:
        started = time.perf_counter()
        try:
            status, body = await post(req.path, req.body, req.headers)
        except h.CLIENT_ERRORS as exc:
            return Outcome(req.kind, False, time.perf_counter() - started, 0, repr(exc))
        seconds = time.perf_counter() - started
        if status >= 300:
            return Outcome(req.kind, False, seconds, 0, f"{status} {body[:200]!r}")
        return Outcome(req.kind, True, seconds, events_in(body))

    return call


def raw_call(producer: AIOKafkaProducer, topic: str) -> Callable[[tuple[str, Unit]], Awaitable[Outcome]]:
    async def call(item: tuple[str, Unit]) -> Outcome:
        kind, unit = item
        started = time.perf_counter()
        try:
            await asyncio.gather(*(producer.send_and_wait(topic, value, key=key, headers=headers)
                                   for key, value, headers in unit.records))
        except Exception as exc:  # noqa: BLE001 - a failed send is a counted failure, not a crash
            return Outcome(kind, False, time.perf_counter() - started, 0, repr(exc))
        return Outcome(kind, True, time.perf_counter() - started, len(unit.records))

    return call


def parse_locally(requests: Sequence[Request]) -> list[list[ArtifactEvent]]:
    """The events each request becomes, by the connectors' own parsers (so the baseline sends the same)."""
    parsers = load_parsers()
    out = []
    for req in requests:
        spec = endpoint_for_path(req.path)
        if spec is None:
            raise ValueError(f"no endpoint serves {req.path}")
        delivery = Delivery(endpoint=req.path, headers={k.lower(): v for k, v in req.headers.items()},
                            body=req.body, received_at=datetime.now(UTC), path_params=req.path_params)
        out.append(list(parsers[spec.name](delivery, json.loads(req.body)).events))
    return out


def encode_units(codec: AvroCodec[ArtifactEvent], parsed: Sequence[Sequence[ArtifactEvent]]) -> tuple[
        list[Unit], float]:
    """Avro-encode every event with the publisher's record layout; returns units and seconds spent."""
    started = time.perf_counter()
    units = [Unit(tuple(
        (e.key.encode(), codec.encode(e),
         [("event_id", e.event_id.encode()), ("kind", e.kind.encode()), ("source", e.source.encode())])
        for e in events)) for events in parsed]
    return units, time.perf_counter() - started


def summarize(outcomes: Sequence[Outcome], seconds: float) -> dict[str, Any]:
    good = [o for o in outcomes if o.ok]
    events = sum(o.events for o in good)
    return {
        "units": len(outcomes), "ok": len(good), "failed": len(outcomes) - len(good), "events": events,
        "seconds": round(seconds, 3), "units_per_s": len(good) / seconds if seconds else 0.0,
        "events_per_s": events / seconds if seconds else 0.0,
        "latency": h.latency_summary(o.seconds for o in good),
    }


def by_kind(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.kind].append(o)
    return {kind: {"units": len(items), "failed": sum(not o.ok for o in items),
                   "events": sum(o.events for o in items if o.ok),
                   "latency": h.latency_summary(o.seconds for o in items if o.ok)}
            for kind, items in sorted(groups.items())}


def failures(outcomes: Sequence[Outcome]) -> list[str]:
    counts = Counter(f"{o.kind}: {o.detail[:160]}" for o in outcomes if not o.ok)
    return [f"{n} x {text}" for text, n in counts.most_common(5)]


async def create_scratch_topic(system: h.System, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_servers, client_id="bench-admin")
    await admin.start()
    try:
        # Same partitions and size limit as the events topic, so the broker does the same work per record.
        await admin.create_topics([NewTopic(name=name, num_partitions=system.settings.topic_partitions,
                                            replication_factor=system.settings.topic_replication_factor,
                                            topic_configs={"max.message.bytes": str(8 * 1024 * 1024)})])
    finally:
        await admin.close()


def new_producer(system: h.System) -> AIOKafkaProducer:
    # The connectors' producer settings (connectors.publisher), so only the HTTP edge differs.
    return AIOKafkaProducer(bootstrap_servers=system.kafka_servers, client_id="bench-raw-producer",
                            enable_idempotence=True, acks="all", linger_ms=LINGER_MS,
                            max_request_size=MAX_REQUEST_BYTES)


async def measure(system: h.System, args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    signer = Signer({name: system.token(name) for name in (
        "github_webhook_secret", "artifactory_secret", "cloudevents_token", "metadata_write_token")})
    warmup = webhook_mix(signer, f"{run}w", args.warmup, seed=args.seed + 1)
    measured = webhook_mix(signer, run, args.requests, seed=args.seed)

    registry = SchemaRegistry(system.settings.schema_registry_url)
    codec = AvroCodec(registry, subject=bootstrap.subject_for(system.settings, "artifact_event"),
                      schema_name="artifact_event", model=ArtifactEvent)
    parse_started = time.perf_counter()
    parsed = parse_locally(measured)
    parse_seconds = time.perf_counter() - parse_started
    units, encode_seconds = encode_units(codec, parsed)
    warm_units, _ = encode_units(codec, parse_locally(warmup))
    n_events = sum(len(u.records) for u in units)
    record_bytes = sum(len(v) for u in units for _, v, _ in u.records)
    h.say(f"prepared {len(measured):,} requests carrying {n_events:,} events "
          f"(mean Avro record {record_bytes / max(n_events, 1):.0f} B; local parse "
          f"{parse_seconds / max(n_events, 1) * 1e6:.0f} us/event, Avro encode "
          f"{encode_seconds / max(n_events, 1) * 1e6:.0f} us/event)")

    topic = f"bench.raw-produce-{run}"
    await create_scratch_topic(system, topic)
    cpu = h.CpuMeter(system.processes())
    async with h.http_client(args.client, system.connectors_url, concurrency=args.concurrency,
                             timeout=REQUEST_TIMEOUT_S) as client:
        producer = new_producer(system)
        await producer.start()
        try:
            h.say(f"warm-up: {len(warmup):,} requests over HTTP and as raw sends")
            await run_bounded(warmup, args.concurrency, http_call(client))
            await run_bounded([(r.kind, u) for r, u in zip(warmup, warm_units, strict=True)], args.concurrency,
                              raw_call(producer, topic))
            cpu.lap()

            h.say(f"baseline: raw aiokafka, {len(units):,} units / {n_events:,} records, "
                  f"concurrency {args.concurrency}")
            raw_outcomes, raw_seconds = await run_bounded(
                [(r.kind, u) for r, u in zip(measured, units, strict=True)], args.concurrency,
                raw_call(producer, topic))
            raw_cpu = cpu.lap()
            h.say("  " + h.describe_cpu(raw_cpu, raw_seconds))
        finally:
            await producer.stop()

        h.say(f"HTTP: {len(measured):,} requests, concurrency {args.concurrency}")
        http_outcomes, http_seconds = await run_bounded(measured, args.concurrency, http_call(client))
        http_cpu = cpu.lap()
        h.say("  " + h.describe_cpu(http_cpu, http_seconds))
    registry.close()

    return {
        "run": run,
        "parameters": {"requests": args.requests, "concurrency": args.concurrency, "warmup": args.warmup,
                       "seed": args.seed, "log_level": args.log_level, "client": args.client},
        "workload": {"events": n_events, "mean_record_bytes": record_bytes / max(n_events, 1),
                     "local_parse_us_per_event": parse_seconds / max(n_events, 1) * 1e6,
                     "avro_encode_us_per_event": encode_seconds / max(n_events, 1) * 1e6},
        "http": summarize(http_outcomes, http_seconds) | {"by_kind": by_kind(http_outcomes),
                                                         "failures": failures(http_outcomes),
                                                         "cpu_seconds": http_cpu},
        "raw": summarize(raw_outcomes, raw_seconds) | {"by_kind": by_kind(raw_outcomes),
                                                      "failures": failures(raw_outcomes), "cpu_seconds": raw_cpu,
                                                      "topic": topic},
    }


def report(result: dict[str, Any]) -> None:
    http, raw = result["http"], result["raw"]
    rows = []
    for name, r in (("HTTP connectors", http), ("raw aiokafka", raw)):
        lat = r["latency"]
        rows.append([name, r["ok"], r["failed"], r["events"], r["seconds"], r["units_per_s"], r["events_per_s"],
                     lat["p50_ms"], lat["p95_ms"], lat["p99_ms"], lat["max_ms"]])
    hl, rl = http["latency"], raw["latency"]
    rows.append(["HTTP / raw", "", "", "", http["seconds"] / raw["seconds"] if raw["seconds"] else "",
                 http["units_per_s"] / raw["units_per_s"] if raw["units_per_s"] else "",
                 http["events_per_s"] / raw["events_per_s"] if raw["events_per_s"] else "",
                 hl["p50_ms"] / rl["p50_ms"], hl["p95_ms"] / rl["p95_ms"], hl["p99_ms"] / rl["p99_ms"],
                 hl["max_ms"] / rl["max_ms"]])
    h.say("")
    h.say(h.table(["", "units ok", "failed", "events", "seconds", "units/s", "events/s", "p50 ms", "p95 ms",
                   "p99 ms", "max ms"], rows))
    h.say("(a unit is one HTTP request, or the same request's records sent raw; latency is per unit)")
    h.say("")
    kinds = []
    for kind, k in http["by_kind"].items():
        lat, raw_lat = k["latency"], raw["by_kind"].get(kind, {}).get("latency", {})
        kinds.append([kind, k["units"], k["failed"], k["events"], lat["p50_ms"], lat["p99_ms"],
                      raw_lat.get("p50_ms", float("nan")), raw_lat.get("p99_ms", float("nan"))])
    h.say(h.table(["HTTP by kind", "requests", "failed", "events", "p50 ms", "p99 ms", "raw p50 ms",
                   "raw p99 ms"], kinds))
    for line in http["failures"] + raw["failures"]:
        h.say(f"failure: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests (default 20000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests or units in flight (default 16)")
    parser.add_argument("--warmup", type=int, default=400, help="uncounted requests first (default 400)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--client", default="aiohttp", choices=["aiohttp", "httpx"],
                        help="load generator's HTTP client; httpx costs ~20x more CPU per request (see _harness)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="log level of the system under test (INFO is what production runs)")
    parser.add_argument("--keep", action="store_true", help="keep the system's data directory")
    args = parser.parse_args()
    if not 0 < args.requests <= 1_000_000 or not 0 < args.concurrency <= 64:
        parser.error("--requests must be 1..1000000 and --concurrency 1..64 (the connectors admit 64)")

    system = h.System(keep=args.keep, log_level=args.log_level)
    with system:
        info = h.machine(system)
        h.say(h.describe_machine(info))
        result = asyncio.run(measure(system, args))
    result = {"benchmark": "webhook_ingest", "finished_at": datetime.now(UTC).isoformat(), "machine": info,
              "system_start_seconds": system.start_seconds} | result
    report(result)
    h.say("")
    h.say(h.describe_machine(info))
    h.say(f"result: {h.write_result('webhook_ingest', result)}")


if __name__ == "__main__":
    main()
