"""The query API, served by the worker (the process that owns the embedded ClickHouse).

Every /v1 route needs the query token (``Authorization: Bearer <query_token>``). ClickHouse calls block, so
each runs in a worker thread on a session of its own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from pydantic import BaseModel, Field

from linked_artifacts import gc_tuning
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import Settings
from pipeline.derive import linked_view as state_view

if TYPE_CHECKING:
    from history.client import Warehouse
    from pipeline.sink import ClickHouseSink
    from pipeline.worker import Linker

log = logging.getLogger(__name__)
T = TypeVar("T")
_METRICS_TYPE = "text/plain; version=0.0.4"
# A scrape or a state lookup waits this long for the linker process: it answers between batches.
_LINKER_TIMEOUT_SECONDS = 10.0


class SqlRequest(BaseModel):
    sql: str = Field(description="One read-only SELECT statement.")
    format: Literal["json", "jsonl", "csv"] = Field(default="json", description="json, jsonl or csv.")
    max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    max_seconds: float = Field(default=30.0, gt=0, le=300)
    parameters: dict[str, str] = Field(
        default_factory=dict, description="Values of the query's {name:Type} placeholders, bound by ClickHouse."
    )


class ExportRequest(BaseModel):
    since: datetime | None = Field(default=None, description="Events at or after this time (with a zone).")
    until: datetime | None = Field(default=None, description="Events before this time (with a zone).")
    digests: list[str] | None = Field(default=None, description="Digests; each brings its family and builds.")


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status_code=status)


@dataclass
class QueryContext:
    """What every route needs: settings, the warehouse (one session per thread), the stream processor."""

    settings: Settings
    warehouse: Warehouse | None
    linker: Linker | None
    sink: ClickHouseSink | None
    # The linker's own endpoint when it runs in a process of its own (pipeline.linker_process).
    linker_url: str | None = None
    local: threading.local = field(default_factory=threading.local)
    _client: httpx.AsyncClient | None = None

    def linker_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.linker_url or "", timeout=_LINKER_TIMEOUT_SECONDS)
        return self._client

    def session(self) -> Warehouse:
        if self.warehouse is None:
            raise HTTPException(503, "this worker runs without ClickHouse (started with --no-sink)")
        if not hasattr(self.local, "warehouse"):
            self.local.warehouse = self.warehouse.session()
        found: Warehouse = self.local.warehouse
        return found

    async def in_thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    def require_token(self, request: Request) -> None:
        expected = self.settings.secret("query_token")
        if expected is None:
            raise HTTPException(503, "no query token configured: set LINKED_ARTIFACTS_QUERY_TOKEN")
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {expected}".encode()):
            raise HTTPException(401, "a valid query token is required: Authorization: Bearer <query_token>")


def create_query_api(
    settings: Settings,
    *,
    warehouse: Warehouse | None,
    linker: Linker | None = None,
    linker_url: str | None = None,
    sink: ClickHouseSink | None = None,
) -> FastAPI:
    """The query API. The linker's state and metrics come from ``linker`` in this process, or from the linker
    process at ``linker_url``."""
    api = FastAPI(title="Linked Artifacts query API", version="1")
    ctx = QueryContext(settings, warehouse, linker, sink, linker_url)

    @api.exception_handler(LinkedArtifactsError)
    async def on_error(request: Request, exc: LinkedArtifactsError) -> JSONResponse:
        return _error(exc.status or 400, exc.code, exc.message, exc.field)

    _health_routes(api, ctx)
    _artifact_routes(api, ctx)
    _query_routes(api, ctx)
    _export_routes(api, ctx)
    # The web pages read through the same sessions and history code as /v1/*: no second data path.
    from web import mount_web
    from web.attestations import KafkaAttestations

    mount_web(api, settings, warehouse_session=ctx.session, attestations=KafkaAttestations(settings))
    return api


def _digest(value: str) -> str:
    try:
        return normalise_digest(value)
    except InvalidDigest as exc:
        raise HTTPException(422, exc.message) from exc


def _health_routes(api: FastAPI, ctx: QueryContext) -> None:
    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        if ctx.warehouse is not None:
            try:
                await ctx.in_thread(lambda: ctx.session().query("SELECT 1"))
                checks["clickhouse"] = "ok"
            except Exception as exc:  # noqa: BLE001 - report, don't raise
                checks["clickhouse"] = f"unavailable: {exc}"
        if ctx.linker_url is not None:
            try:
                (await ctx.linker_client().get("/healthz")).raise_for_status()
                checks["linker"] = "ok"
            except httpx.HTTPError as exc:
                checks["linker"] = f"unavailable: {exc}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @api.get("/metrics")
    async def metrics() -> Response:
        text = _metrics_text(ctx)
        if ctx.linker_url is not None:
            text += await _linker_metrics(ctx)
        return PlainTextResponse(text, media_type=_METRICS_TYPE)


async def _linker_metrics(ctx: QueryContext) -> str:
    """The linker process's metrics, after this process's own: their names are the linker's alone
    (``la_worker_*``, its batches' ``la_gc_*`` and its ``la_linker_process_*``), so the two texts join."""
    registry = CollectorRegistry()
    up = Gauge("la_worker_linker_up", "1 if the linker process answered this scrape", registry=registry)
    try:
        response = await ctx.linker_client().get("/metrics")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("the linker process did not answer /metrics (%s); see its lines in this worker's log", exc)
        up.set(0)
        return generate_latest(registry).decode()
    up.set(1)
    return generate_latest(registry).decode() + response.text


def create_linker_api(settings: Settings, linker: Linker) -> FastAPI:
    """What the linker process serves the worker that started it: its health, a key's state and its metrics."""
    api = FastAPI(title="Linked Artifacts linker", version="1")
    ctx = QueryContext(settings, None, linker, None)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/metrics")
    async def metrics() -> Response:
        registry = CollectorRegistry()
        ProcessCollector(namespace="la_linker", registry=registry)
        _linker_gauges(registry, linker)
        return PlainTextResponse(generate_latest(registry).decode(), media_type=_METRICS_TYPE)

    _state_route(api, ctx)
    return api


def _metrics_text(ctx: QueryContext) -> str:
    registry = CollectorRegistry()
    # The process's CPU, memory and garbage-collector sweeps (linked_artifacts.gc_tuning): a worker that
    # slows down for no visible reason may be collecting a heap grown too large.
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    gc_tuning.register_threshold_gauge(registry)
    if ctx.linker is not None:
        _linker_gauges(registry, ctx.linker)
    _sink_gauges(registry, ctx.sink)
    return generate_latest(registry).decode()


def _linker_gauges(registry: CollectorRegistry, linker: Linker) -> None:
    linker.collections.register(registry)
    Gauge("la_worker_records_processed", "Records the linker processed", registry=registry).set(linker.processed)
    Gauge("la_worker_states_published", "Linked states published", registry=registry).set(linker.published)
    largest = Gauge("la_worker_state_bytes_largest", "The largest state the linker wrote since it started, in "
                    "bytes, and its key (a state only grows; at la_worker_state_bytes_limit its key takes "
                    "nothing more)",
                    ["key"], registry=registry)
    largest.labels(key=linker.sizes.largest_key).set(linker.sizes.largest_bytes)
    Gauge("la_worker_state_bytes_limit", "The most a state may have, in bytes (worker_state_max_bytes)",
          registry=registry).set(linker.sizes.limit)
    Gauge("la_worker_states_warned", "Keys whose state passed the warning size (logged once each)",
          registry=registry).set(len(linker.sizes.warned))
    Gauge("la_worker_states_frozen", "Keys whose state reached worker_state_max_bytes: they take nothing more, "
          "and their events go to the dead-letter topic (state_too_large)",
          registry=registry).set(len(linker.processor.frozen))
    Gauge("la_worker_state_cache_states", "Decoded states the linker keeps between batches",
          registry=registry).set(len(linker.cache))
    Gauge("la_worker_state_cache_evicted", "Decoded states dropped beyond worker_state_cache_states (decoded "
          "again from the table when needed)", registry=registry).set(linker.cache.evicted)
    Gauge(
        "la_worker_derived_applied_locally",
        "Derived messages applied by this worker to keys it owns, without a trip through the derived topic",
        registry=registry,
    ).set(linker.applied_locally)
    Gauge(
        "la_worker_derived_sent",
        "Derived messages sent through the derived topic to keys other workers own",
        registry=registry,
    ).set(linker.derived_sent)
    Gauge(
        "la_worker_acks_held_back",
        "Acknowledgements of records the agent did not handle (dropped in a rebalance or stop), kept from "
        "the committed offsets so the records are fetched again",
        registry=registry,
    ).set(linker.offsets.held_back)
    Gauge(
        "la_worker_partitions_rewound",
        "Partitions without a committed offset rewound to their start after a rebalance",
        registry=registry,
    ).set(linker.offsets.rewound)
    Gauge(
        "la_worker_offset_gaps_ignored",
        "Offset jumps in the agent's topics that Faust would have counted as acknowledged",
        registry=registry,
    ).set(linker.offsets.gaps_ignored)
    Gauge(
        "la_worker_partition_refetches",
        "Seeks back to a partition's first unhandled record after the stream dropped it (around a rebalance)",
        registry=registry,
    ).set(linker.offsets.refetched)
    handovers = Gauge(
        "la_worker_record_handovers",
        "Fetched records handed to the stream: directly, or waiting (a full stream buffer: back-pressure)",
        ["path"],
        registry=registry,
    )
    consumer = linker.app.consumer
    handovers.labels(path="direct").set(getattr(consumer, "handed_over", 0))
    handovers.labels(path="waited").set(getattr(consumer, "waited", 0))
    lag = Gauge(
        "la_worker_partition_commit_lag",
        "Records past the committed offset, per partition of the events and derived topics this worker owns",
        ["topic", "partition"],
        registry=registry,
    )
    for tp, records in sorted(linker.offsets.commit_lag(linker.app.consumer).items()):
        lag.labels(topic=tp.topic, partition=str(tp.partition)).set(records)
    owned = Gauge(
        "la_worker_partition_assigned", "Events-topic partitions this worker owns", ["partition"], registry=registry
    )
    for topic, partition in sorted(linker.assigned):
        if topic == linker.events_topic:
            owned.labels(partition=str(partition)).set(1)


def _sink_gauges(registry: CollectorRegistry, sink: ClickHouseSink | None) -> None:
    if sink is None:
        return
    # Here, not at the top: the linker process serves this module too, and never needs ClickHouse's client
    # (~0.17 s of its start-up).
    from pipeline.history_writer import WarehouseWriter

    for name, value in vars(sink.stats).items():
        Gauge(f"la_sink_{name}", f"ClickHouse sink {name}", registry=registry).set(value)
    Gauge("la_sink_gathered_rows", "Records the sink gathered for its next insert", registry=registry).set(
        sink.gathered_rows
    )
    if isinstance(sink.writer, WarehouseWriter):
        refreshes = Gauge("la_sink_snapshot_refreshes", "Snapshots the sink wrote after its inserts",
                          ["snapshot"], registry=registry)
        seconds = Gauge("la_sink_snapshot_refresh_seconds", "What the latest refresh of a snapshot took",
                        ["snapshot"], registry=registry)
        for name, count in sink.writer.refreshes.items():
            refreshes.labels(snapshot=name).set(count)
            seconds.labels(snapshot=name).set(sink.writer.refresh_seconds[name])


def _state_route(api: FastAPI, ctx: QueryContext) -> None:
    @api.get("/v1/state/{key:path}", dependencies=[Depends(ctx.require_token)])
    async def stream_state(key: str, request: Request) -> Any:
        """The stream processor's current linked state of a key (from its table), if this worker owns it."""
        if ctx.linker is None and ctx.linker_url is not None:
            return await _forward_state(ctx, key, request)
        state = ctx.linker.lookup(key) if ctx.linker is not None else None
        if state is None:
            raise HTTPException(404, f"no state for {key} on this worker")
        return state_view(state)


async def _forward_state(ctx: QueryContext, key: str, request: Request) -> Response:
    try:
        response = await ctx.linker_client().get(
            f"/v1/state/{key}", headers={"authorization": request.headers.get("authorization", "")}
        )
    except httpx.HTTPError as exc:
        raise HTTPException(
            503, f"the linker process did not answer ({exc}); see its lines in this worker's log"
        ) from exc
    return Response(response.content, status_code=response.status_code, media_type="application/json")


def _artifact_routes(api: FastAPI, ctx: QueryContext) -> None:
    auth = [Depends(ctx.require_token)]
    _state_route(api, ctx)

    @api.get("/v1/artifacts/{digest}", dependencies=auth)
    async def artifact(digest: str, history_limit: int = 50) -> Any:
        from history.linked_view import linked_view

        view = await ctx.in_thread(linked_view, ctx.session(), _digest(digest), history_limit=history_limit)
        if view is None:
            return _error(404, "unknown_digest", f"nothing is known about {digest}; has anything sent it?")
        return view

    @api.get("/v1/artifacts/{digest}/storage-records", dependencies=auth)
    async def storage_records(digest: str) -> Any:
        from history.linked_view import storage_records as records

        return await ctx.in_thread(records, ctx.session(), _digest(digest))

    @api.get("/v1/artifacts/{digest}/deployment-records", dependencies=auth)
    async def deployment_records(digest: str) -> Any:
        from history.linked_view import deployment_records as records

        return await ctx.in_thread(records, ctx.session(), _digest(digest))


def _query_routes(api: FastAPI, ctx: QueryContext) -> None:
    auth = [Depends(ctx.require_token)]

    @api.get("/v1/alerts", dependencies=auth)
    async def alerts(q: str = "", limit: int = 50, offset: int = 0) -> Any:
        from history.alerts import search_alerts

        return await ctx.in_thread(search_alerts, ctx.session(), q, limit=min(limit, 1000), offset=offset)

    @api.post("/v1/sql", dependencies=auth)
    async def sql(request: SqlRequest) -> Any:
        from history.sql import format_csv, format_jsonl, run_readonly_sql

        result = await ctx.in_thread(
            run_readonly_sql,
            ctx.session(),
            request.sql,
            max_rows=request.max_rows,
            max_seconds=request.max_seconds,
            parameters=request.parameters,
        )
        if request.format == "csv":
            return PlainTextResponse(format_csv(result), media_type="text/csv")
        if request.format == "jsonl":
            return PlainTextResponse(format_jsonl(result), media_type="application/x-ndjson")
        return result.as_dict()


# Records per chunk of the export stream: each chunk is one hop to a worker thread and back, so a large
# export pays that hop once per this many records rather than once per record.
_EXPORT_CHUNK_RECORDS = 500


def _export_routes(api: FastAPI, ctx: QueryContext) -> None:
    auth = [Depends(ctx.require_token)]

    @api.post("/v1/export", dependencies=auth)
    async def export(request: ExportRequest) -> Any:
        """Audit export as JSON lines: ``{"plan": ...}``, then ``{"file": stem, "record": ...}`` per record in
        file order, then ``{"end": {"records": n}}``. The CLI writes the files and the manifest; a stream
        without its end line was cut short."""
        import json

        from history.export import export_records, plan_export
        from history.sql import jsonable

        if ctx.warehouse is None:
            raise HTTPException(503, "this worker runs without ClickHouse (started with --no-sink)")
        # Its own session: the stream is read across worker threads, and no other call may share it.
        session = await ctx.in_thread(ctx.warehouse.session)
        try:
            plan = await ctx.in_thread(
                plan_export, session, since=request.since, until=request.until, digests=request.digests
            )
        except BaseException:
            session.close()
            raise

        def lines() -> Iterator[bytes]:
            count = 0
            chunk = [json.dumps({"plan": plan.as_dict(), "database": session.database})]
            try:
                for stem, record in export_records(session, plan):
                    chunk.append(json.dumps({"file": stem, "record": jsonable(record)}, ensure_ascii=False))
                    count += 1
                    if len(chunk) >= _EXPORT_CHUNK_RECORDS:
                        yield ("\n".join(chunk) + "\n").encode()
                        chunk = []
                chunk.append(json.dumps({"end": {"records": count}}))
                yield ("\n".join(chunk) + "\n").encode()
            finally:
                session.close()

        return StreamingResponse(lines(), media_type="application/x-ndjson")
