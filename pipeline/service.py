"""The worker service (`linked-artifacts worker`): the process that owns ClickHouse. It runs the ClickHouse
sink and the query API, and the Faust linker as a child process (pipeline.linker_process).

The two never share an interpreter lock: the linker folds events into states while this process decodes
and inserts the same events into the history. Neither needs the other's memory: the sink reads the events
topic with a consumer group of its own, and ``/v1/state`` and the linker's metrics come from the child's
endpoint. Seen from outside it is still one service on one port, started and stopped as one, and a SIGKILL
of this process takes the linker along.

It stops on SIGTERM or SIGINT: the sink leaves what it gathered uncommitted (read again after a restart),
the linker finishes its batch and commits. It also stops, with exit code 1, when the linker process or the
sink fails, so whatever supervises the worker (`up`, systemd, Kubernetes) sees one failed service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import uvicorn

from linked_artifacts import bootstrap, topics
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent
from linked_artifacts.settings import Settings
from pipeline.linker_process import LinkerProcess
from pipeline.sink import ClickHouseSink

if TYPE_CHECKING:
    from history.client import Warehouse

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: this service stops the server with everything else."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_sink(settings: Settings) -> tuple[ClickHouseSink, Warehouse]:
    """The sink on a warehouse of its own (migrations applied); returns the sink and the warehouse."""
    from history.client import Warehouse
    from pipeline.history_writer import WarehouseWriter

    warehouse = Warehouse.open(settings)
    codec = AvroCodec(
        SchemaRegistry(settings.schema_registry_url),
        subject=bootstrap.subject_for(settings, "artifact_event"),
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    sink = ClickHouseSink(settings, topic=topics.events_topic(settings), codec=codec, writer=WarehouseWriter(warehouse))
    return sink, warehouse


async def serve(
    settings: Settings,
    *,
    with_api: bool = True,
    linker: LinkerProcess | None = None,
    on_sink: Callable[[ClickHouseSink], None] | None = None,
) -> int:
    """Run until stopped; the exit code (0 on SIGTERM/SIGINT, 1 when a part failed). ``linker`` replaces the
    real linker child (the bench runs its replay there); ``on_sink`` sees the sink before it starts."""
    linker = linker or LinkerProcess(settings)
    linker.start()
    if settings.worker_sink_nice:
        # Before this process starts any thread (ClickHouse's, the executor's): Linux keeps a niceness per
        # thread, and new threads take their creator's.
        os.nice(settings.worker_sink_nice)
    try:
        sink, warehouse = await asyncio.to_thread(build_sink, settings)
    except BaseException:
        await linker.stop()
        raise
    if on_sink is not None:
        on_sink(sink)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    parts: dict[asyncio.Task[object], str] = {
        asyncio.create_task(sink.run()): "the ClickHouse sink",
        asyncio.create_task(linker.exited()): "the linker process",
        asyncio.create_task(stopping.wait()): "a stop signal",
    }
    server: _Server | None = None
    if with_api:
        from pipeline.query_api import create_query_api

        api = create_query_api(settings, warehouse=warehouse, linker_url=linker.url, sink=sink)
        server = _Server(
            uvicorn.Config(api, host=settings.http_host, port=settings.query_port, log_level="warning", lifespan="off")
        )
        parts[asyncio.create_task(server.serve())] = "the query API"
    log.info(
        "worker service: ClickHouse sink, query API on %s:%d, linker process %d",
        settings.http_host, settings.query_port, linker.pid or 0,
    )
    done, _ = await asyncio.wait(parts, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    for task in done:
        what = parts[task]
        if what == "a stop signal":
            log.info("stopping: the linker finishes its batch, the sink leaves what it gathered for the next start")
            continue
        code = 1
        if task.exception() is not None:
            log.error("%s failed; stopping the worker", what, exc_info=task.exception())
        elif what == "the linker process":
            log.error("the linker process %s; stopping the worker", _ended(task.result()))
        else:
            log.error("%s stopped unexpectedly; stopping the worker", what)
    await _stop(sink, linker, server, parts)
    await asyncio.to_thread(warehouse.close)
    return code


async def _stop(
    sink: ClickHouseSink, linker: LinkerProcess, server: _Server | None, parts: dict[asyncio.Task[object], str]
) -> None:
    sink.stop()
    if server is not None:
        server.should_exit = True
    await linker.stop()
    for task, what in parts.items():
        if what == "a stop signal":
            task.cancel()
            continue
        if task.done():
            continue
        try:
            await asyncio.wait_for(task, 30)
        except TimeoutError:
            log.warning("%s did not stop within 30 s", what)
        except Exception:  # noqa: BLE001 - stopping anyway; say what failed
            log.exception("%s failed while stopping", what)


def _ended(code: object) -> str:
    if isinstance(code, int) and code < 0:
        return f"was killed by {signal.Signals(-code).name} (no lines of its own say why: look for the OOM killer " \
            "or an operator)"
    return f"exited with code {code} (its lines above, marked 'linker', say why)"
