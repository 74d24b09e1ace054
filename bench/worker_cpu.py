"""CPU cost of the worker's own work per event, without Kafka: decode, merge, derive, encode.

    .venv/bin/python -m bench.worker_cpu [--events 50000] [--batch 5000] [--profile]

The same workload as ``bench.pipeline_e2e`` (Grype reports and CloudEvents deployment batches across
releases that succeed each other in their slots), parsed by the connectors' own parsers and Avro-framed,
is fed in batches through ``pipeline.processor.Processor`` with an in-memory table, the way
``pipeline.worker.Linker.handle`` does it: digests' states Avro-encoded for the enriched topic and the
table, other states serialised as JSON for the table (pipeline.changelog), and derived messages fed back
in (as the derived topic would) until nothing more is sent. No broker, no sink: this is the ceiling the
worker's Python sets, and where its time goes (``--profile`` prints the top functions).

Figures: events/s of CPU time for the whole exchange, derived messages per event, state writes and enriched
records per event, and the mean size of a state.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import pstats
import time
from collections import deque
from typing import Any

import fastavro

from bench._payloads import BatchPlan, Signer, batch_workload
from bench.webhook_ingest import parse_locally
from linked_artifacts import avro_schema, gc_tuning
from linked_artifacts.avro import AvroCodec
from linked_artifacts.events import ArtifactEvent
from pipeline.changelog import read_state, table_value
from pipeline.enriched import StateEncoder
from pipeline.processor import Processor, Record, exchange
from pipeline.state import LinkedArtifactState, key_role
from pipeline.worker import BATCH_MAX, LOCAL_ROUNDS_MAX

EVENTS = "bench.events"
DERIVED = "bench.derived"


class _LocalRegistry:
    """Schema ids without a registry: the codec only needs an id per subject and the writer schema back."""

    def __init__(self) -> None:
        self.schemas: dict[int, Any] = {}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        schema_id = len(self.schemas) + 1
        self.schemas[schema_id] = fastavro.parse_schema(schema)
        return schema_id

    def schema_by_id(self, schema_id: int) -> Any:
        return self.schemas[schema_id]


def canonical_events(events: int, seed: int) -> list[ArtifactEvent]:
    tokens = {name: "t" for name in ("scans_token", "cloudevents_token")}
    requests, _ = batch_workload(Signer(tokens), "cpu", BatchPlan(events=events), seed=seed)
    return [event for unit in parse_locally(requests) for event in unit]


def run(
    events: list[ArtifactEvent], batch: int, *, local: bool, collections: gc_tuning.BatchCollections | None
) -> dict[str, Any]:
    registry: Any = _LocalRegistry()
    codec = AvroCodec(registry, subject="e", schema_name="artifact_event", model=ArtifactEvent)
    state_codec = AvroCodec(registry, subject="s", schema_name="linked_artifact", model=LinkedArtifactState)
    enriched = StateEncoder(state_codec)
    processor = Processor(events_topic=EVENTS, derived_topic=DERIVED, codec=codec)
    partitions = 4
    queue: deque[Record] = deque(
        Record(EVENTS, hash(e.key) % partitions, i, e.key.encode(), codec.encode(e)) for i, e in enumerate(events)
    )
    # The worker holds a batch of records, not every event decoded: drop the models so the garbage
    # collector's sweeps see the heap a worker has (they scan every live container object).
    total = len(events)
    events.clear()
    table: dict[str, bytes] = {}
    cache: dict[str, LinkedArtifactState] = {}
    refreshed: set[str] = set()
    counts = {"records": 0, "derived": 0, "local": 0, "writes": 0, "enriched": 0, "state_bytes": 0, "batches": 0}
    kinds: dict[str, int] = {}

    def lookup(key: str) -> LinkedArtifactState | None:
        if key in cache:
            return cache[key]
        data = table.get(key)
        return None if data is None else read_state(data, state_codec)

    def remember(key: str, state: LinkedArtifactState) -> None:
        cache[key] = state

    def local_partition(key: str) -> int | None:
        # One worker owns every partition: with --exchange local every message stays in the process.
        return hash(key) % partitions if local else None

    started = time.process_time()
    offset = total
    while queue:
        # As the worker: no collections inside a batch, its survivors frozen after it.
        with collections.batch() if collections is not None else contextlib.nullcontext():
            records = [queue.popleft() for _ in range(min(batch, len(queue)))]
            counts["records"] += len(records)
            counts["batches"] += 1
            outcome = exchange(
                processor,
                processor.process(records, lookup),
                lookup,
                remember=remember,
                refreshed=refreshed,
                local_partition=local_partition,
                max_rounds=LOCAL_ROUNDS_MAX,
            )
            counts["local"] += outcome.applied_locally
            published = {
                key: enriched.encode(state)
                for key, (_, state) in outcome.touched.items()
                if key_role(key) == "digest" and (key in outcome.changed or key in outcome.fresh)
            }
            for key, (_, state) in outcome.changed.items():
                data = table_value(state, enriched=published.get(key))
                table[key] = data
                counts["writes"] += 1
                counts["state_bytes"] += len(data)
            counts["enriched"] += len(published)
            for message in outcome.remote:
                offset += 1
                queue.append(
                    Record(
                        DERIVED,
                        hash(message.target_key) % partitions,
                        offset,
                        message.target_key.encode(),
                        message.model_dump_json().encode(),
                    )
                )
                counts["derived"] += 1
                kinds[message.kind] = kinds.get(message.kind, 0) + 1
    cpu = time.process_time() - started
    hit_rate = enriched.hits / max(enriched.hits + enriched.misses, 1)
    full = collections.full_collections if collections is not None else 0
    return {"cpu_seconds": cpu, "events": total, **counts, "kinds": kinds, "hit_rate": hit_rate, "full_gc": full}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="canonical events (default 50000)")
    parser.add_argument("--batch", type=int, default=BATCH_MAX, help=f"records per batch ({BATCH_MAX}, as the worker)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--exchange",
        choices=["local", "topic"],
        default="local",
        help="local: one worker owning every key applies derived messages in-process, as the worker does "
        "(default); topic: every derived message makes a trip through the (simulated) derived topic",
    )
    parser.add_argument("--profile", action="store_true", help="print the 30 costliest functions")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep CPython's default garbage-collector thresholds and collections inside batches instead of "
        "the worker's tuning (linked_artifacts.gc_tuning), to measure what the tuning is worth",
    )
    args = parser.parse_args()
    avro_schema.load("artifact_event")
    if not args.default_gc:
        # As the worker process does, after start-up. Before the events are made, so they are not frozen:
        # the worker's records are not.
        gc_tuning.tune_for_service()
    print(f"parsing {args.events:,} events with the connectors' parsers ...", flush=True)
    events = canonical_events(args.events, args.seed)
    print(
        f"feeding {len(events):,} events in batches of {args.batch:,}, garbage-collector thresholds "
        f"{gc.get_threshold()} ...",
        flush=True,
    )
    profiler = cProfile.Profile() if args.profile else None
    if profiler:
        profiler.enable()
    collections = None if args.default_gc else gc_tuning.BatchCollections()
    figures = run(events, args.batch, local=args.exchange == "local", collections=collections)  # empties ``events``
    if profiler:
        profiler.disable()
    n = figures["events"]
    print(
        f"{n:,} events, {figures['records']:,} records ({figures['derived']:,} derived through the topic, "
        f"{figures['derived'] / n:.2f}/event; {figures['local']:,} applied in-process, "
        f"{figures['local'] / n:.2f}/event) in {figures['batches']:,} batches: "
        f"{figures['cpu_seconds']:.1f} s CPU = {n / figures['cpu_seconds']:,.0f} events/s of worker CPU "
        f"({figures['full_gc']} full garbage collections between batches)"
    )
    print(
        f"state writes {figures['writes']:,} ({figures['writes'] / n:.2f}/event), mean state "
        f"{figures['state_bytes'] / max(figures['writes'], 1) / 1024:.1f} KiB; enriched records "
        f"{figures['enriched']:,} ({figures['enriched'] / n:.2f}/event, "
        f"{figures['hit_rate']:.0%} of their records spliced from the cache)"
    )
    print(
        "derived through the topic by kind: "
        + ", ".join(f"{kind} {count:,}" for kind, count in sorted(figures["kinds"].items()))
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue())


if __name__ == "__main__":
    main()
