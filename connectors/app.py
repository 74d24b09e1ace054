"""The connectors service: the HTTP edge between the sources and Kafka.

Per request, in this order, each step answering on its own failure:

1. the source's secret must be configured (else 503 naming the setting: unsigned input is never accepted);
2. a bearer token is checked from the headers alone (401), before a byte of the body is read;
3. the Content-Type must be one the endpoint accepts (415);
4. the body is read with the size limit, from Content-Length and while streaming (413);
5. a signature (GitHub HMAC, JFrog auth) is checked over the raw bytes (401); nothing refused so far is
   stored;
6. JSON is parsed with depth and count limits, then the source's parser runs; any refusal, and any parser
   exception, is a 4xx plus a dead letter (503 if the dead letter cannot be stored: it would be lost);
7. events are published; the answer is 2xx only after Kafka acknowledged them all (else 503 + Retry-After).

So input can cause 4xx answers only; 503 means "retry later"; a 500 would be a bug in this module.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI, Header, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors import auth, deadletter
from connectors.base import Delivery, InputError, ParseResult
from connectors.endpoints import BODY_SCHEMAS, BY_NAME, ENDPOINTS, GITHUB_SCAN_EVENTS, EndpointSpec, accepts
from connectors.jsonlimits import parse_json
from connectors.metrics import ConnectorMetrics
from connectors.publisher import RETRY_AFTER_S, EventPublisher, KafkaPublisher, PublisherUnavailable
from linked_artifacts import gc_tuning
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.settings import Settings

log = logging.getLogger("connectors")

Parser = Callable[[Delivery, Any], ParseResult]

# Bodies above this are parsed in a worker thread, so one large report does not stall every other request
# (and the producer's I/O) for the tens of milliseconds json.loads and a parser need on a few MiB.
THREAD_PARSE_BYTES = 256 * 1024
# The query service answers from ClickHouse in well under a second; past this the caller gets 503.
QUERY_TIMEOUT_S = 5.0
QUERY_RETRY_AFTER_S = 5
# Each request may hold a body of max_body_bytes and its parsed JSON (up to max_json_items values) at once;
# past this many concurrent requests uvicorn answers 503 instead of letting memory grow without bound.
MAX_CONCURRENT_REQUESTS = 64
DELIVERY_ID_HEADERS = ("x-github-delivery", "ce-id", "x-request-id")
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# --- response shapes (documented in the OpenAPI schema) -----------------------------------------
class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Accepted(BaseModel):
    accepted: int
    event_ids: list[str]


class Ignored(BaseModel):
    ignored: bool = True
    reason: str | None = None


class HttpProblem(Exception):
    """An answer other than success, with its log and metrics classification."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        reason: str,
        field: str | None = None,
        retry_after: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason  # metrics class: auth, size, content_type, input, unavailable, not_configured
        self.field = field
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)

    def response(self) -> JSONResponse:
        body = ErrorResponse(error=ErrorBody(code=self.code, message=self.message, field=self.field))
        return JSONResponse(body.model_dump(), status_code=self.status, headers=self.headers)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return HttpProblem(status, code, message, reason="http", field=field).response()


# --- runtime state ------------------------------------------------------------------------------
@dataclass
class Runtime:
    settings: Settings
    publisher: EventPublisher
    parsers: Mapping[str, Parser]
    metrics: ConnectorMetrics
    http: httpx.AsyncClient | None = None  # for the query service; tests may set their own
    _own_http: httpx.AsyncClient | None = None
    _http_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def query_client(self) -> httpx.AsyncClient:
        async with self._http_lock:
            if self.http is None:
                self.http = self._own_http = httpx.AsyncClient(timeout=QUERY_TIMEOUT_S)
            return self.http

    async def close(self) -> None:
        if self._own_http is not None:
            await self._own_http.aclose()
            if self.http is self._own_http:
                self.http = None
            self._own_http = None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def load_parsers(overrides: Mapping[str, Parser] | None = None) -> dict[str, Parser]:
    """The parser of every endpoint: ``overrides`` first, the source modules for the rest."""
    parsers: dict[str, Parser] = dict(overrides or {})
    for spec in ENDPOINTS:
        if spec.name not in parsers:
            module_name, _, function = spec.parser.partition(":")
            parsers[spec.name] = getattr(importlib.import_module(module_name), function)
    return parsers


class _RequestLog(logging.LoggerAdapter[logging.Logger]):
    """Puts the endpoint and delivery id on every line, as text and as record attributes."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        # The delivery id comes from a header: escape '%' so it cannot act as a format directive.
        prefix = f"{extra['endpoint']} delivery={extra['delivery_id']}: ".replace("%", "%%")
        return prefix + str(msg), kwargs


def _delivery_id(headers: Mapping[str, str]) -> str:
    for name in DELIVERY_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:100]
    return "req-" + uuid.uuid4().hex[:16]


def _remote(request: Request) -> str:
    return request.client.host if request.client else "-"


# --- ingestion steps ----------------------------------------------------------------------------
BodyCheck = Callable[[bytes], str]


def _authorize(settings: Settings, spec: EndpointSpec, headers: Mapping[str, str]) -> BodyCheck:
    """Check what can be checked from headers; return the check of the raw body (returns the auth mode)."""
    if spec.auth == "bearer":
        auth.verify_bearer(headers.get("authorization"), auth.scope_tokens(settings, spec.scope or ""))
        return lambda _body: "bearer"
    if spec.auth == "github":
        return _github_check(auth.require_secret(settings, "github_webhook_secret"), headers)
    if spec.auth == "artifactory":
        secret = auth.require_secret(settings, "artifactory_secret")
        mode = settings.artifactory_auth_mode
        return lambda body: auth.verify_jfrog(secret, body, headers.get(auth.JFROG_AUTH_HEADER), mode=mode)
    return _scans_check(settings, headers)


def _github_check(secret: str, headers: Mapping[str, str]) -> BodyCheck:
    def check(body: bytes) -> str:
        auth.verify_github(secret, body, headers.get(auth.GITHUB_SIGNATURE_HEADER))
        return "github-hmac"

    return check


def _scans_check(settings: Settings, headers: Mapping[str, str]) -> BodyCheck:
    """Scanners send a bearer token; GitHub's dependabot/code-scanning webhooks are signed instead."""
    if not settings.secret("scans_token") and not settings.secret("github_webhook_secret"):
        raise auth.NotConfigured("scans_token", "github_webhook_secret")
    if headers.get("authorization"):
        auth.verify_bearer(headers.get("authorization"), auth.scope_tokens(settings, "scans"))
        return lambda _body: "bearer"
    if not headers.get(auth.GITHUB_SIGNATURE_HEADER):
        raise auth.AuthFailure(
            "missing credentials: send a bearer token, or a GitHub-signed dependabot_alert or "
            "code_scanning_alert webhook",
            reason="no credentials",
            field="Authorization",
        )
    event = headers.get("x-github-event", "")
    if event not in GITHUB_SCAN_EVENTS:
        raise auth.AuthFailure(
            "GitHub signatures are accepted here only for dependabot_alert and code_scanning_alert events",
            reason=f"signed event {event[:40]!r} not allowed on /events/scans",
            field="X-GitHub-Event",
        )
    return _github_check(auth.require_secret(settings, "github_webhook_secret"), headers)


def _check_content_type(spec: EndpointSpec, headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type")
    if not accepts(spec, content_type):
        raise HttpProblem(
            415,
            "unsupported_media_type",
            f"unsupported Content-Type {content_type!r}; this endpoint accepts "
            f"{', '.join(spec.content_types)} (UTF-8)",
            reason="content_type",
            field="Content-Type",
        )


def _too_large(limit: int) -> HttpProblem:
    return HttpProblem(
        413,
        "body_too_large",
        f"request body exceeds max_body_bytes ({limit} bytes)",
        reason="size",
        field="body",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as Content-Length or the bytes received pass ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        declared = declared.strip()
        if not (declared.isascii() and declared.isdigit()):
            raise HttpProblem(400, "invalid_content_length", "Content-Length is not a number", reason="size")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)  # stop reading: at most one chunk past the limit is ever held
            chunks.append(chunk)
    except ClientDisconnect:
        raise HttpProblem(
            400, "client_disconnected", "the client closed the request early", reason="size"
        ) from None
    return b"".join(chunks)


def _without_credentials(headers: Mapping[str, str], settings: Settings) -> dict[str, str]:
    dropped = {"authorization", "cookie"}
    if settings.artifactory_auth_mode == "plain":
        dropped.add(auth.JFROG_AUTH_HEADER)  # in plain mode the header is the secret itself
    return {k: v for k, v in headers.items() if k not in dropped}


def _sender(settings: Settings, spec: EndpointSpec) -> dict[str, str]:
    if spec.name != "kubernetes":
        return {}
    values = {"cluster": settings.kubernetes_cluster, "environment": settings.kubernetes_environment}
    return {k: v for k, v in values.items() if v}


def _validation_error(exc: ValidationError) -> InputError:
    errors = exc.errors()
    if not errors:
        return InputError("event: invalid value", status=422, code="invalid_event")
    loc = ".".join(str(p) for p in errors[0]["loc"])
    return InputError(
        f"{loc or 'event'}: {errors[0]['msg']}", field=loc or None, status=422, code="invalid_event"
    )


async def _maybe_in_thread(size: int, fn: Callable[..., Any], *args: Any) -> Any:
    if size > THREAD_PARSE_BYTES:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


async def _parse(rt: Runtime, spec: EndpointSpec, delivery: Delivery, rlog: _RequestLog) -> ParseResult:
    """JSON plus the source's parser. Every failure is the input's: a 4xx and a dead letter."""
    settings = rt.settings
    try:
        payload = await _maybe_in_thread(
            len(delivery.body),
            lambda: parse_json(
                delivery.body, max_depth=settings.max_json_depth, max_items=settings.max_json_items
            ),
        )
        result = await _maybe_in_thread(len(delivery.body), rt.parsers[spec.name], delivery, payload)
        if not isinstance(result, ParseResult):
            raise TypeError(f"parser returned {type(result).__name__}, not ParseResult")
        return result
    except InputError as exc:
        error = exc
    except ValidationError as exc:  # an event model refused what the parser built from the input
        error = _validation_error(exc)
    except Exception as exc:  # a parser bug on this input: keep the input for a replay after the fix
        rlog.exception("parser %s failed on this input", spec.name)
        error = InputError(
            f"the {spec.name} parser could not process this input ({type(exc).__name__})",
            status=422,
            code="unprocessable",
        )
    await _refuse(rt, spec, delivery, error, rlog)


async def _refuse(
    rt: Runtime, spec: EndpointSpec, delivery: Delivery, error: InputError, rlog: _RequestLog
) -> NoReturn:
    """Dead-letter the input and raise the 4xx answer (or 503 when the dead letter cannot be stored)."""
    status = error.status if error.status is not None and 400 <= error.status < 500 else 422
    record = deadletter.build_dead_letter(
        endpoint=delivery.endpoint,
        body=delivery.body,
        reason=error.message,
        error_code=error.code,
        headers=delivery.headers,
        received_at=delivery.received_at,
        artifactory_auth_mode=rt.settings.artifactory_auth_mode,
    )
    started = time.perf_counter()
    try:
        await rt.publisher.publish_dead_letter(record)
    except (PublisherUnavailable, InputError) as exc:
        rt.metrics.dead_letter_failures.labels(spec.name).inc()
        rlog.error("refused input (%s: %s) could not be dead-lettered: %s", error.code, error.message, exc)
        raise HttpProblem(
            503,
            "unavailable",
            f"the input was refused ({error.code}: {error.message}) and could not be kept for replay: {exc}",
            reason="unavailable",
            retry_after=RETRY_AFTER_S,
        ) from exc
    rt.metrics.produce_seconds.labels("dead_letter").observe(time.perf_counter() - started)
    rt.metrics.dead_letters.labels(spec.name, error.code).inc()
    rlog.warning(
        "refused %s (%s): %s; dead letter %s", error.code, status, error.message, record.dead_letter_id[:16]
    )
    raise HttpProblem(status, error.code, error.message, reason="input", field=error.field)


async def _publish(
    rt: Runtime, spec: EndpointSpec, delivery: Delivery, result: ParseResult, rlog: _RequestLog
) -> Response:
    if result.ignored:
        rlog.info("ignored: %s", result.note)
        return JSONResponse(Ignored(reason=result.note).model_dump(), status_code=200)
    started = time.perf_counter()
    try:
        await rt.publisher.publish(result, delivery)
    except PublisherUnavailable as exc:
        rlog.warning("not stored, answering 503: %s", exc.message)
        raise HttpProblem(
            503, exc.code, exc.message, reason="unavailable", retry_after=exc.retry_after
        ) from exc
    except InputError as exc:  # the records cannot be written (too large, not encodable)
        await _refuse(rt, spec, delivery, exc, rlog)
    rt.metrics.produce_seconds.labels("events").observe(time.perf_counter() - started)
    for event in result.events:
        rt.metrics.events_published.labels(event.kind, event.source).inc()
    rt.metrics.attestations_published.inc(len(result.attestations))
    event_ids = [e.event_id for e in result.events]
    rlog.info("accepted %d events, %d attestations", len(event_ids), len(result.attestations))
    if result.response is not None:
        return JSONResponse(jsonable_encoder(result.response), status_code=200)
    return JSONResponse(Accepted(accepted=len(event_ids), event_ids=event_ids).model_dump(), status_code=202)


async def _ingest(request: Request, spec: EndpointSpec) -> Response:
    rt = _runtime(request)
    received_at = datetime.now(UTC)
    headers = {k.lower(): v for k, v in request.headers.items()}
    rlog = _RequestLog(log, {"endpoint": spec.path, "delivery_id": _delivery_id(headers)})
    try:
        check_body = _authorize(rt.settings, spec, headers)
        headers = _without_credentials(headers, rt.settings)  # parsers and dead letters never see them
        _check_content_type(spec, headers)
        body = await _read_body(request, rt.settings.max_body_bytes)
        mode = check_body(body)
        rlog.debug("authenticated (%s), %d bytes", mode, len(body))
        delivery = Delivery(
            endpoint=request.url.path,
            headers=headers,
            body=body,
            received_at=received_at,
            query=dict(request.query_params),
            path_params={k: str(v) for k, v in request.path_params.items()},
            sender=_sender(rt.settings, spec),
        )
        result = await _parse(rt, spec, delivery, rlog)
        return await _publish(rt, spec, delivery, result, rlog)
    except auth.AuthFailure as exc:
        rlog.warning("refused 401 from %s: %s (source %s)", _remote(request), exc.reason, spec.name)
        problem = HttpProblem(
            401, exc.code, exc.message, reason="auth", field=exc.field, headers=_challenge(spec)
        )
    except auth.NotConfigured as exc:
        rlog.error("refused 503: %s", exc.message)
        problem = HttpProblem(503, exc.code, exc.message, reason="not_configured", retry_after=RETRY_AFTER_S)
    except HttpProblem as exc:
        if exc.reason in ("size", "content_type"):
            rlog.warning("refused %d from %s: %s", exc.status, _remote(request), exc.message)
        problem = exc
    rt.metrics.rejects.labels(spec.name, problem.reason, problem.code).inc()
    return problem.response()


def _challenge(spec: EndpointSpec) -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"} if spec.auth in ("bearer", "scans") else {}


# --- artifact metadata reads: forwarded to the query service ------------------------------------
def _query_base(settings: Settings) -> str:
    return deadletter.service_url(settings, settings.query_port)


async def _forward_records(request: Request, digest: str, kind: str) -> Response:
    rt = _runtime(request)
    settings = rt.settings
    endpoint = f"/orgs/{{org}}/artifacts/{{subject_digest}}/metadata/{kind}"
    rlog = _RequestLog(log, {"endpoint": endpoint, "delivery_id": _delivery_id(request.headers)})
    try:
        auth.verify_bearer(request.headers.get("authorization"), auth.scope_tokens(settings, "metadata:read"))
        query_token = auth.require_secret(settings, "query_token")
        try:
            normalised = normalise_digest(digest, field="subject_digest")
        except InvalidDigest as exc:
            raise HttpProblem(422, exc.code, exc.message, reason="input", field="subject_digest") from None
        url = f"{_query_base(settings)}/v1/artifacts/{quote(normalised, safe=':')}/{kind}"
        return await _call_query(rt, url, query_token, request, rlog)
    except auth.AuthFailure as exc:
        rlog.warning("refused 401 from %s: %s (metadata read)", _remote(request), exc.reason)
        problem = HttpProblem(
            401, exc.code, exc.message, reason="auth", field=exc.field, headers={"WWW-Authenticate": "Bearer"}
        )
    except auth.NotConfigured as exc:
        problem = HttpProblem(503, exc.code, exc.message, reason="not_configured", retry_after=RETRY_AFTER_S)
    except HttpProblem as exc:
        problem = exc
    rt.metrics.rejects.labels(f"metadata-read-{kind}", problem.reason, problem.code).inc()
    return problem.response()


async def _call_query(rt: Runtime, url: str, token: str, request: Request, rlog: _RequestLog) -> Response:
    client = await rt.query_client()
    try:
        upstream = await client.get(
            url,
            params=list(request.query_params.multi_items()),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
    except httpx.HTTPError as exc:
        rlog.warning("query service unavailable at %s: %r", url, exc)
        raise HttpProblem(
            503,
            "query_service_unavailable",
            f"the query service at {_query_base(rt.settings)} is not answering ({type(exc).__name__}); "
            "it runs in the worker process (`linked-artifacts up` starts it)",
            reason="unavailable",
            retry_after=QUERY_RETRY_AFTER_S,
        ) from exc
    if upstream.status_code in (401, 403):
        rlog.error("query service refused our query_token (%d)", upstream.status_code)
        raise HttpProblem(
            503,
            "query_service_unavailable",
            f"the query service refused the connectors' token; check {auth.env_name('query_token')}",
            reason="unavailable",
            retry_after=QUERY_RETRY_AFTER_S,
        )
    return Response(
        content=upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


# --- metrics middleware -------------------------------------------------------------------------
class _MetricsMiddleware:
    """Counts every answer by route template (never the raw path: bounded label values) and status."""

    def __init__(self, app: ASGIApp, metrics: ConnectorMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = str(getattr(route, "path", "unmatched"))
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            log.log(
                level,
                "%s %s -> %d in %.1f ms",
                scope["method"],
                endpoint,
                status,
                (time.perf_counter() - started) * 1000,
                extra={"endpoint": endpoint, "status": status},
            )


# --- OpenAPI ------------------------------------------------------------------------------------
SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Per-source token (see settings)."},
    "githubSignature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Hub-Signature-256",
        "description": "sha256=<hex HMAC-SHA256 of the raw body with github_webhook_secret>",
    },
    "jfrogEventAuth": {
        "type": "apiKey",
        "in": "header",
        "name": "X-JFrog-Event-Auth",
        "description": "The shared secret (plain mode) or hex HMAC-SHA256 of the raw body (hmac-sha256).",
    },
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "bearer": [{"bearerAuth": []}],
    "github": [{"githubSignature": []}],
    "artifactory": [{"jfrogEventAuth": []}],
    "scans": [{"bearerAuth": []}, {"githubSignature": []}],
}
_DOC_TYPES: dict[str, tuple[str, ...]] = {
    "attestations": (
        "application/json",
        "application/vnd.in-toto+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    ),
}


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


def _route_doc(spec: EndpointSpec) -> dict[str, Any]:
    types = _DOC_TYPES.get(
        spec.name, spec.content_types if spec.name == "cloudevents" else ("application/json",)
    )
    schema = BODY_SCHEMAS[spec.name]
    return {
        "summary": spec.summary,
        "status_code": 202,
        "response_model": None,
        "responses": {
            200: {
                "description": "Ignored (ignored: true, with the reason), or the metadata API's answer",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            202: {"model": Accepted, "description": "Stored: Kafka acknowledged every event"},
            400: _error_doc("Not UTF-8, empty, or not JSON"),
            401: _error_doc("Missing or wrong signature or token; nothing was stored"),
            413: _error_doc("Body larger than max_body_bytes, or more JSON values than max_json_items"),
            415: _error_doc("Content-Type not accepted here"),
            422: _error_doc("JSON too deep, duplicate keys, or content the parser refuses (field named)"),
            503: _error_doc(
                "Kafka or the registry is unavailable, or the source's secret is not configured; "
                "retry after Retry-After seconds"
            ),
        },
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {t: {"schema": schema} for t in types},
            },
            "security": _SECURITY[spec.auth],
        },
    }


def _read_doc() -> dict[str, Any]:
    return {
        "response_model": None,
        "responses": {
            200: {
                "description": "The query service's answer",
                "content": {"application/json": {"schema": {}}},
            },
            401: _error_doc("Missing or wrong bearer token (metadata_read_token or metadata_write_token)"),
            404: {"description": "Unknown digest (as the query service answers)"},
            422: _error_doc("subject_digest is not sha256:<64 hex>"),
            503: _error_doc("The query service is not answering, or a token is not configured"),
        },
        "openapi_extra": {"security": _SECURITY["bearer"]},
    }


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# --- the app ------------------------------------------------------------------------------------
OrgParam = Annotated[
    str, Path(min_length=1, max_length=100, description="Organisation (kept for API parity)")
]
ClusterParam = Annotated[str, Path(min_length=1, max_length=255, description="Cluster name")]
DigestParam = Annotated[str, Path(pattern=r"^sha256:[0-9a-fA-F]{64}$", description="sha256:<64 hex>")]
GitHubEvent = Annotated[str | None, Header(alias="X-GitHub-Event", description="GitHub event name")]
GitHubDelivery = Annotated[str | None, Header(alias="X-GitHub-Delivery", description="GitHub delivery GUID")]

Handler = Callable[..., Awaitable[Response]]


def _register_ingest_routes(app: FastAPI) -> None:
    async def github(
        request: Request, x_github_event: GitHubEvent = None, x_github_delivery: GitHubDelivery = None
    ) -> Response:
        return await _ingest(request, BY_NAME["github"])

    async def artifactory(request: Request) -> Response:
        return await _ingest(request, BY_NAME["artifactory"])

    async def storage_record(request: Request, org: OrgParam) -> Response:
        return await _ingest(request, BY_NAME["storage-record"])

    async def deployment_record(request: Request, org: OrgParam) -> Response:
        return await _ingest(request, BY_NAME["deployment-record"])

    async def cluster_deployment_records(request: Request, org: OrgParam, cluster: ClusterParam) -> Response:
        return await _ingest(request, BY_NAME["cluster-deployment-records"])

    async def attestations(request: Request) -> Response:
        return await _ingest(request, BY_NAME["attestations"])

    async def cloudevents(request: Request) -> Response:
        return await _ingest(request, BY_NAME["cloudevents"])

    async def kubernetes(request: Request) -> Response:
        return await _ingest(request, BY_NAME["kubernetes"])

    async def scans(request: Request, x_github_event: GitHubEvent = None) -> Response:
        return await _ingest(request, BY_NAME["scans"])

    handlers: dict[str, Handler] = {
        "github": github,
        "artifactory": artifactory,
        "storage-record": storage_record,
        "deployment-record": deployment_record,
        "cluster-deployment-records": cluster_deployment_records,
        "attestations": attestations,
        "cloudevents": cloudevents,
        "kubernetes": kubernetes,
        "scans": scans,
    }
    for spec in ENDPOINTS:
        tag = (
            "webhooks"
            if spec.path.startswith("/webhooks")
            else "artifact metadata"
            if "/orgs/" in spec.path
            else "events"
        )
        app.add_api_route(
            spec.path, handlers[spec.name], methods=["POST"], name=spec.name, tags=[tag], **_route_doc(spec)
        )


def _register_read_routes(app: FastAPI) -> None:
    @app.get(
        "/orgs/{org}/artifacts/{subject_digest}/metadata/storage-records",
        tags=["artifact metadata"],
        summary="List the storage records of a digest (answered by the query service)",
        **_read_doc(),
    )
    async def storage_records(request: Request, org: OrgParam, subject_digest: DigestParam) -> Response:
        return await _forward_records(request, subject_digest, "storage-records")

    @app.get(
        "/orgs/{org}/artifacts/{subject_digest}/metadata/deployment-records",
        tags=["artifact metadata"],
        summary="List the deployment records of a digest (answered by the query service)",
        **_read_doc(),
    )
    async def deployment_records(request: Request, org: OrgParam, subject_digest: DigestParam) -> Response:
        return await _forward_records(request, subject_digest, "deployment-records")


def _register_ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Kafka and the schema registry are reachable",
        responses={503: {"description": "A dependency is unreachable; details per component"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks = await _runtime(request).publisher.health()
        ready = all(c.ok for c in checks.values())
        body = {"ready": ready, "checks": {k: {"ok": c.ok, "detail": c.detail} for k, c in checks.items()}}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request) -> Response:
        payload, content_type = _runtime(request).metrics.render()
        return Response(payload, media_type=content_type)


def _install_error_handlers(app: FastAPI) -> None:
    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            return _error(400, "http_error", str(exc))
        # Keep the exception's headers: a 405 must carry Allow (RFC 9110).
        problem = HttpProblem(
            exc.status_code, "http_error", str(exc.detail), reason="http", headers=exc.headers
        )
        return problem.response()

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {}
        parts = [str(p) for p in first.get("loc", ())]
        if parts and parts[0] in ("path", "query", "header", "cookie", "body"):
            parts = parts[1:]  # name the parameter as the caller knows it
        loc = ".".join(parts)
        return _error(422, "invalid_request", f"{loc}: {first.get('msg', 'invalid')}", field=loc or None)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal error; the input was not stored, retry later")

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)


def create_app(
    settings: Settings,
    *,
    publisher: EventPublisher | None = None,
    parsers: Mapping[str, Parser] | None = None,
    metrics: ConnectorMetrics | None = None,
) -> FastAPI:
    """The connectors app. ``publisher`` defaults to Kafka; ``parsers`` overrides source parsers by endpoint
    name (see ``connectors.endpoints``), the rest are imported from ``connectors.sources``."""
    runtime = Runtime(
        settings=settings,
        publisher=publisher if publisher is not None else KafkaPublisher(settings),
        parsers=load_parsers(parsers),
        metrics=metrics or ConnectorMetrics(),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.publisher.start()
        try:
            yield
        finally:
            await runtime.publisher.stop()
            await runtime.close()

    app = FastAPI(
        title="Linked Artifacts connectors",
        version="0.1.0",
        description="Webhook and record intake: verifies, parses and publishes to Kafka. "
        "2xx only after Kafka acknowledged; 503 + Retry-After means retry.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    _register_ingest_routes(app)
    _register_read_routes(app)
    _register_ops_routes(app)
    _install_error_handlers(app)
    _install_openapi(app)
    app.add_middleware(_MetricsMiddleware, metrics=runtime.metrics)
    return app


def uvicorn_config(settings: Settings, app: FastAPI | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app or create_app(settings),
        host=settings.http_host,
        port=settings.connectors_port,
        log_config=None,  # the CLI configures logging; uvicorn must not replace it
        access_log=False,  # _MetricsMiddleware logs one line per request with the route template
        server_header=False,
        timeout_graceful_shutdown=15,  # in-flight requests finish their publish (8 s deadline)
        limit_concurrency=MAX_CONCURRENT_REQUESTS,
    )


async def serve(settings: Settings) -> None:
    """Serve until cancelled or signalled (for callers that own the event loop)."""
    await uvicorn.Server(uvicorn_config(settings)).serve()


def run(settings: Settings) -> None:
    """Blocking entry point: ``linked-artifacts connectors``."""
    server = uvicorn.Server(uvicorn_config(settings))
    gc_tuning.tune_for_service()
    server.run()
