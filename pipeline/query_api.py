"""The query API, served by the worker (the process that owns the embedded ClickHouse).

Every /v1 route needs the query token (``Authorization: Bearer <query_token>``). ClickHouse calls block, so
each runs in a worker thread on a session of its own.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel, Field

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


class SqlRequest(BaseModel):
    sql: str = Field(description="One read-only SELECT statement.")
    format: str = Field(default="json", description="json, jsonl or csv.")
    max_rows: int = Field(default=10_000, ge=1, le=1_000_000)
    max_seconds: float = Field(default=30.0, gt=0, le=300)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status_code=status)


def create_query_api(
    settings: Settings,
    *,
    warehouse: Warehouse | None,
    linker: Linker | None = None,
    sink: ClickHouseSink | None = None,
) -> FastAPI:
    api = FastAPI(title="Linked Artifacts query API", version="1")
    local = threading.local()

    def session() -> Warehouse:
        if warehouse is None:
            raise HTTPException(503, "this worker runs without ClickHouse (started with --no-sink)")
        if not hasattr(local, "warehouse"):
            local.warehouse = warehouse.session()
        found: Warehouse = local.warehouse
        return found

    async def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(func, *args, **kwargs)

    def require_token(request: Request) -> None:
        expected = settings.secret("query_token")
        if expected is None:
            raise HTTPException(503, "no query token configured: set LINKED_ARTIFACTS_QUERY_TOKEN")
        supplied = request.headers.get("authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {expected}".encode()):
            raise HTTPException(401, "a valid query token is required: Authorization: Bearer <query_token>")

    @api.exception_handler(LinkedArtifactsError)
    async def on_error(request: Request, exc: LinkedArtifactsError) -> JSONResponse:
        return _error(exc.status or 400, exc.code, exc.message, exc.field)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz")
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        if warehouse is not None:
            try:
                await in_thread(lambda: session().query("SELECT 1"))
                checks["clickhouse"] = "ok"
            except Exception as exc:  # noqa: BLE001 - report, don't raise
                checks["clickhouse"] = f"unavailable: {exc}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @api.get("/metrics")
    async def metrics() -> Response:
        registry = CollectorRegistry()
        if linker is not None:
            Gauge("la_worker_records_processed", "Records the linker processed", registry=registry).set(
                linker.processed)
            Gauge("la_worker_states_published", "Linked states published", registry=registry).set(linker.published)
        if sink is not None:
            for name, value in vars(sink.stats).items():
                Gauge(f"la_sink_{name}", f"ClickHouse sink {name}", registry=registry).set(value)
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    @api.get("/v1/state/{key:path}", dependencies=[Depends(require_token)])
    async def stream_state(key: str) -> dict[str, Any]:
        """The stream processor's current linked state of a key (from its table), if this worker owns it."""
        if linker is None:
            raise HTTPException(404, "no stream processor in this process")
        state = linker.lookup(key)
        if state is None:
            raise HTTPException(404, f"no state for {key} on this worker")
        return state_view(state)

    def _digest(value: str) -> str:
        try:
            return normalise_digest(value)
        except InvalidDigest as exc:
            raise HTTPException(422, exc.message) from exc

    @api.get("/v1/artifacts/{digest}", dependencies=[Depends(require_token)])
    async def artifact(digest: str, history_limit: int = 50) -> Any:
        from history.linked_view import linked_view

        view = await in_thread(linked_view, session(), _digest(digest), history_limit=history_limit)
        if view is None:
            return _error(404, "unknown_digest", f"nothing is known about {digest}; has anything sent it?")
        return view

    @api.get("/v1/artifacts/{digest}/storage-records", dependencies=[Depends(require_token)])
    async def storage_records(digest: str) -> Any:
        from history.linked_view import storage_records as records

        return await in_thread(records, session(), _digest(digest))

    @api.get("/v1/artifacts/{digest}/deployment-records", dependencies=[Depends(require_token)])
    async def deployment_records(digest: str) -> Any:
        from history.linked_view import deployment_records as records

        return await in_thread(records, session(), _digest(digest))

    @api.get("/v1/alerts", dependencies=[Depends(require_token)])
    async def alerts(q: str = "", limit: int = 50, offset: int = 0) -> Any:
        from history.alerts import alerts as ranked

        return await in_thread(ranked, session(), q, limit=min(limit, 1000), offset=offset)

    @api.post("/v1/sql", dependencies=[Depends(require_token)])
    async def sql(request: SqlRequest) -> Any:
        from history.sql import run_readonly_sql

        return await in_thread(run_readonly_sql, session(), request.sql, max_rows=request.max_rows,
                               max_seconds=request.max_seconds)

    return api
