"""Reference consumers for bench/pipeline_e2e.py: the events topic read again, from offset 0, by a Faust app
of its own (own app id, so a fresh consumer group and fresh tables).

    python -m bench.faust_reference --mode count|count-direct|naive|naive-gc|replay|replay-default-gc|replay-sink \
        --app-id ID --expect N

Modes:

``count``
    A plain agent that only counts raw records: the ceiling Faust itself sets on this machine.
``count-direct``
    ``count`` on the worker's Faust consumer (``pipeline.faust_consumer``), which hands records to the stream
    without Faust's four tasks per record: how much of the worker's lead over the plain agent that is.
``naive``
    What most users would write: inside ``async for event in stream``, decode the Avro event, read the key's
    state from a table, ``pipeline.merge.merge`` it, and ``table[key] = state``: one table write (and one
    changelog record) per event, no batching, no coalescing, nothing published. CPython's default garbage
    collector settings, as users leave them.
``naive-gc``
    ``naive`` with the worker's garbage-collector tuning (``linked_artifacts.gc_tuning``): how much of the
    worker's lead over the naive join is that tuning alone.
``replay``
    The real worker (``pipeline.worker.create_app``, without sink and query API), under this app id. Its
    derived and enriched topics are redirected to scratch topics of this app id, so the replay neither
    feeds the running system's worker nor mixes its derived messages with the live run's. Done when every
    event was processed and every derived message it sent was consumed. It runs with the worker's
    garbage-collector tuning, as ``pipeline.worker.run`` does.
``replay-default-gc``
    ``replay`` with CPython's default garbage-collector settings: what the tuning gives the worker.
``replay-sink``
    The worker service (``pipeline.service``) with ``replay`` as its linker process, and its ClickHouse sink
    writing into a ClickHouse of its own (chDB under ``--datadir``, or a database named after the app id on
    a configured server): the whole worker as it runs, two processes, every effect of an event (state,
    changelog, enriched record, history row), from a backlog. Done when the replay is done and the sink
    has inserted (or found already stored) every event. Its CPU and peak memory are both processes'.

Kafka, the registry and the topic prefix come from LINKED_ARTIFACTS_* like in every process. When done, it
writes its result as JSON to ``--result`` (times are epoch seconds; a file because Faust redirects stdout
into its logs) and stops itself with SIGTERM, which Faust handles as a clean shutdown. Until then it
rewrites the file every second with ``"finished": false``, so a run stopped at the parent's deadline
still gives a rate over what it consumed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from linked_artifacts import bootstrap, gc_tuning, log, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings, load_settings
from pipeline import batching, faust_consumer, worker
from pipeline.merge import merge
from pipeline.processor import BatchResult, Record
from pipeline.state import LinkedArtifactState, empty_state

if TYPE_CHECKING:
    from pipeline.sink import ClickHouseSink

Mode = Literal["count", "count-direct", "naive", "naive-gc", "replay", "replay-default-gc", "replay-sink"]
PROGRESS_EVERY_S = 1.0
RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Progress:
    """Counts what the agent consumed; reports once when the target is reached, then stops the process."""

    def __init__(self, *, mode: Mode, app_id: str, expect: int, result: Path) -> None:
        self.mode = mode
        self.result = result
        self.app_id = app_id
        self.expect = expect
        self.started = time.time()
        self.first: float | None = None
        self.first_cpu = 0.0
        self.events = 0
        self.derived_in = 0
        self.derived_out = 0
        self.batches = 0
        # With the sink: events it inserted or found stored, and when each side was done.
        self.sunk: int | None = None
        self.linker_done: float | None = None
        self.sink_done: float | None = None
        self.reported = False
        self.last_write = 0.0
        # replay-sink: the linker process's CPU and peak memory (its own result file); replay --stay: done
        # without stopping, since the worker service that started it stops it.
        self.linker_cpu = 0.0
        self.linker_rss_mib = 0.0
        self.linker_handovers: dict[str, int] | None = None
        self.linker_first: float | None = None
        self.stay = False
        # The app's consumer, once built: its hand-over counts say how often fetching met a full buffer.
        self.consumer: Callable[[], Any] | None = None

    def arrived(self) -> None:
        """The agent got its first record: the clock and the CPU count start here, before any work on it."""
        if self.first is None:
            self.first = time.time()
            self.first_cpu = _cpu()

    def seen(self, *, events: int, derived_in: int = 0, derived_out: int = 0) -> None:
        self.arrived()
        self.events += events
        self.derived_in += derived_in
        self.derived_out += derived_out
        self.batches += 1
        if self.linker_done is None and self.events >= self.expect and self.derived_in >= self.derived_out:
            self.linker_done = time.time()
        self._check()

    def linker_report(self, report: dict[str, Any]) -> None:
        """replay-sink: the latest result of its linker process (a ``replay``), folded into this one."""
        if report["app_id"] != self.app_id or (report["events"] == 0 and report["batches"] == 0):
            return  # another round's file, or nothing consumed yet
        first = self.linker_first = report["first_record"]
        if self.first is None or first < self.first:
            self.first = first
        self.events, self.derived_in, self.derived_out = report["events"], report["derived_in"], report["derived_out"]
        self.batches = report["batches"]
        self.linker_cpu, self.linker_rss_mib = report["cpu_seconds"], report["max_rss_mib"]
        self.linker_handovers = report.get("handovers")
        if self.linker_done is None and report["linker_seconds"] is not None:
            self.linker_done = first + report["linker_seconds"]
        self._check()

    def stored(self, events: int) -> None:
        """The sink committed an insert: ``events`` in all were inserted or found already stored."""
        self.sunk = events
        if self.sink_done is None and events >= self.expect:
            self.sink_done = time.time()
        self._check()

    def _check(self) -> None:
        if self.reported:
            return
        if self.linker_done is not None and (self.sunk is None or self.sink_done is not None):
            self.write(finished=True)
            self.reported = True
            if not self.stay:
                # Let the agent return to Faust first; the worker then stops on SIGTERM like on Ctrl-C.
                asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        elif time.time() - self.last_write >= PROGRESS_EVERY_S:
            # So a run the parent stops at its deadline still yields a rate over what it consumed.
            self.write(finished=False)

    def write(self, *, finished: bool) -> None:
        done = self.last_write = time.time()
        first = self.first if self.first is not None else done
        result = {
            "mode": self.mode,
            "app_id": self.app_id,
            "finished": finished,
            "events": self.events,
            "expect": self.expect,
            "derived_in": self.derived_in,
            "derived_out": self.derived_out,
            "batches": self.batches,
            "stored": self.sunk,
            "linker_seconds": self.linker_done - first if self.linker_done is not None else None,
            "sink_seconds": self.sink_done - first if self.sink_done is not None else None,
            # replay-sink: how long after the first record of the two (the sink's, usually) the linker got its
            # first; the clock starts at the earlier, so this much of the linker's start-up is in (e).
            "linker_first_after_s": self.linker_first - first if self.linker_first is not None else None,
            "process_started": self.started,
            "first_record": first,
            "done": done,
            "startup_seconds": first - self.started,
            "consume_seconds": done - first,
            "cpu_seconds": _cpu() - self.first_cpu + self.linker_cpu,
            "events_per_s": self.events / (done - first) if done > first else None,
            # Peak resident memory (Linux reports KiB): what the garbage-collector tuning costs in memory.
            "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 + self.linker_rss_mib,
        }
        consumer = self.consumer() if self.consumer is not None else None
        if isinstance(consumer, faust_consumer.Consumer):
            result["handovers"] = {"direct": consumer.handed_over, "waited": consumer.waited}
        elif self.linker_handovers is not None:
            result["handovers"] = self.linker_handovers
        tmp = self.result.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(self.result)  # the parent never reads half a file


def _faust_app(settings: Settings, app_id: str, datadir: Path, app_class: type[faust.App] = faust.App) -> faust.App:
    # The worker's own Faust settings (pipeline.worker.create_app), so only the agent body differs.
    return app_class(
        app_id,
        broker=f"kafka://{settings.kafka_servers}",
        store="memory://",
        datadir=str(datadir),
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        topic_disable_leader=True,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        **worker.CLIENTS,
        broker_commit_interval=1.0,
        web_enabled=False,
    )


def count_app(settings: Settings, progress: Progress, datadir: Path) -> faust.App:
    app_class = faust_consumer.App if progress.mode == "count-direct" else faust.App
    app = _faust_app(settings, progress.app_id, datadir, app_class)
    source = app.topic(topics.events_topic(settings), **RAW)

    @app.agent(source, name="count")
    async def count(stream: Any) -> None:
        async for _value in stream:
            progress.seen(events=1)

    return app


def naive_app(settings: Settings, progress: Progress, datadir: Path) -> faust.App:
    app = _faust_app(settings, progress.app_id, datadir)
    source = app.topic(topics.events_topic(settings), **RAW)
    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "artifact_event"),
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    # bytes keys and values: Faust picks its raw codec for them. The value is what the worker stores (the
    # state's canonical JSON), so both pay the same (de)serialisation.
    table = app.Table(
        "naive-state", default=None, partitions=settings.topic_partitions, key_type=bytes, value_type=bytes
    )

    @app.agent(source, name="naive-join")
    async def join(stream: Any) -> None:
        async for value in stream:
            event = codec.decode(value)
            key = event.key.encode()
            stored = table.get(key)
            state = LinkedArtifactState.model_validate_json(stored) if stored is not None else empty_state(event.key)
            table[key] = merge(state, event).model_dump_json().encode()
            progress.seen(events=1)

    return app


async def _create_topics(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_servers, client_id="bench-reference")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        await admin.create_topics(
            [
                NewTopic(
                    name=n,
                    num_partitions=settings.topic_partitions,
                    replication_factor=settings.topic_replication_factor,
                )
                for n in names
                if n not in existing
            ]
        )
    finally:
        await admin.close()


def replay_app(settings: Settings, progress: Progress, datadir: Path) -> faust.App:
    derived, enriched = f"{progress.app_id}.derived", f"{progress.app_id}.enriched"
    asyncio.run(_create_topics(settings, [derived, enriched]))
    # Redirect the worker's outputs (looked up through the module at Linker construction) to scratch topics;
    # the events topic, the merge, the batching and the table writes stay exactly the worker's.
    topics.derived_topic = lambda _settings: derived  # type: ignore[assignment]
    topics.enriched_topic = lambda _settings: enriched  # type: ignore[assignment]
    own = {"worker_id": progress.app_id, "data_dir": datadir}
    _clock_on_gather(progress)
    app, linker = worker.create_app(settings.model_copy(update=own), api=None)
    handle = linker.handle
    events_topic = topics.events_topic(settings)

    async def counted(records: list[Record]) -> BatchResult:
        sent = linker.derived_sent
        result = await handle(records)
        from_events = sum(1 for r in records if r.topic == events_topic)
        # Only messages that went through the derived topic come back in; the rest were applied in-process.
        progress.seen(events=from_events, derived_in=len(records) - from_events, derived_out=linker.derived_sent - sent)
        return result

    linker.handle = counted  # type: ignore[method-assign]
    return app


def _clock_on_gather(progress: Progress) -> None:
    """The clock starts when the stream hands the batch its first record, as the plain and naive agents' does
    when their body gets theirs. (Started at the first batch's hand-over, it left Faust's delivery of that
    batch, ~1 s of ~12,000 records, out of the rate.)"""
    take_backlog = batching.Stream.take_backlog

    def clocked(self: batching.Stream, most: int, **kwargs: Any) -> Any:
        async def arrived(value: Any) -> Any:
            progress.arrived()
            return value

        self.add_processor(arrived)  # before the batch's own, which take_backlog adds
        return take_backlog(self, most, **kwargs)

    batching.Stream.take_backlog = clocked  # type: ignore[method-assign]


def run_service(settings: Settings, progress: Progress, datadir: Path) -> None:
    """``replay-sink``: the worker service itself (pipeline.service), with the ClickHouse sink in this process
    and, as its linker process, a ``replay`` of this app id that keeps running when done. Its progress comes
    from the result file it rewrites every second."""
    from pipeline.linker_process import LinkerProcess
    from pipeline.service import serve

    # A ClickHouse of its own: chDB under the data directory (the live worker holds the system's), or a
    # database of its own on a configured server.
    own = settings.model_copy(update={"worker_id": progress.app_id, "data_dir": datadir,
                                      "clickhouse_database": progress.app_id.replace("-", "_")})
    linked = progress.result.with_suffix(".linker.json")
    linked.unlink(missing_ok=True)  # the file of an earlier round with the same result path
    linker = LinkerProcess(own, argv=[
        sys.executable, "-m", "bench.faust_reference", "--mode", "replay", "--app-id", progress.app_id,
        "--expect", str(progress.expect), "--datadir", str(datadir / "linker"), "--result", str(linked), "--stay",
    ])
    progress.sunk = 0

    def on_sink(sink: ClickHouseSink) -> None:
        flush = sink._flush

        async def flushed(fetched: Any) -> None:
            await flush(fetched)
            progress.stored(sink.stats.rows + sink.stats.duplicates + sink.stats.poison)

        sink._flush = flushed  # type: ignore[method-assign]

    async def follow() -> None:
        while True:
            await asyncio.sleep(0.2)
            with contextlib.suppress(OSError, ValueError):
                progress.linker_report(json.loads(linked.read_text()))

    async def main() -> int:
        following = asyncio.create_task(follow())
        try:
            return await serve(own, with_api=False, linker=linker, on_sink=on_sink)
        finally:
            following.cancel()

    _clock_on_fetch(progress)
    sys.exit(asyncio.run(main()))


def _clock_on_fetch(progress: Progress) -> None:
    """The sink may get records before the linker's first batch: its first fetch starts the clock too."""
    from aiokafka import AIOKafkaConsumer

    from pipeline import sink as sink_module

    class ClockedConsumer(AIOKafkaConsumer):  # type: ignore[misc]
        async def getmany(self, *partitions: Any, **kwargs: Any) -> Any:
            fetched = await super().getmany(*partitions, **kwargs)
            if fetched:
                progress.arrived()
            return fetched

    sink_module.AIOKafkaConsumer = ClockedConsumer  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["count", "count-direct", "naive", "naive-gc", "replay", "replay-default-gc",
                                           "replay-sink"], required=True)
    parser.add_argument("--app-id", required=True, help="Faust app id: a fresh consumer group and tables")
    parser.add_argument("--expect", type=int, required=True, help="events on the topic; done when all are read")
    parser.add_argument("--datadir", type=Path, required=True, help="Faust's data directory (throw-away)")
    parser.add_argument("--result", type=Path, required=True, help="where to write the result JSON")
    parser.add_argument("--stay", action="store_true",
                        help="keep running when done (replay-sink's linker process: its worker stops it)")
    args = parser.parse_args()
    settings = load_settings()
    # As the worker does: library loggers at WARNING. faust.Worker leaves the root logger at DEBUG, and
    # aiokafka's per-send debug records alone cost ~5% of a reference's CPU.
    log.configure(settings, process=f"bench-{args.mode}")
    args.datadir.mkdir(parents=True, exist_ok=True)
    progress = Progress(mode=args.mode, app_id=args.app_id, expect=args.expect, result=args.result)
    progress.stay = args.stay
    if args.mode == "replay-sink":
        gc_tuning.tune_for_service()  # as pipeline.worker.run does
        run_service(settings, progress, args.datadir)
        return
    builders = {
        "count": count_app, "count-direct": count_app, "naive": naive_app, "naive-gc": naive_app, "replay": replay_app,
        "replay-default-gc": replay_app,
    }
    app = builders[args.mode](settings, progress, args.datadir)
    progress.consumer = lambda: app.consumer
    if args.mode in ("naive-gc", "replay"):
        gc_tuning.tune_for_service()  # as pipeline.worker.run does
    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
