"""HTTP routes of the web pages, added to the query API by :func:`mount_web`.

=============================  ===========================================================================
``GET /``                       redirects to the artifacts list
``GET /artifacts``              artifacts list (``chip``, ``q``, ``find``, ``as_of``, ``sort``, ``dir``, ``page``)
``GET /artifacts/{digest}``     one artifact's linked view and timeline (``as_of``)
``GET /triage``                 prioritised alerts (``chip``, ``q``, ``as_of``, ``page``)
``GET /triage.csv``             every alert of the triage filter, as CSV
``GET /overview``               ingest, rejects, deployments and exposure charts
``GET /attestations/{sha256}``  the original bytes of a build attestation
``GET /login``, ``POST /login`` the token form; ``POST /logout`` ends the session
``GET /web/pulse``              ``{"events": n}``: the live refresh polls it
``GET /web/live/{page}``        ``{"html": ..., "events": n}``: a page's body, re-rendered
``GET /web/static/*``           the stylesheet and the script (no external assets anywhere)
=============================  ===========================================================================

Any page also accepts ``?token=<query_token>``: it sets the session cookie and redirects to the same
URL without the token, so the token does not stay in the address bar or the history.

ClickHouse calls block: each page runs in a worker thread, on that thread's own session
(``warehouse_session`` is called inside the thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from history.client import Warehouse, WarehouseError
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import Settings
from web import pages
from web.attestations import SHA256_HEX, AttestationSource, AttestationsUnavailable
from web.auth import COOKIE, WebAuth
from web.connector_metrics import fetch_rejects, metrics_url
from web.queries import event_count
from web.render import STATIC, Timer, apply_headers, page_response, render

# How often an open page asks whether new events arrived (one cheap count per poll and page).
REFRESH_SECONDS: Final = 5.0
MAX_FORM_BYTES: Final = 4096
ROUTE_PREFIX: Final = "web."  # every route and mount of the pages is named web.<something>


class _Web:
    def __init__(
        self,
        settings: Settings,
        warehouse_session: Callable[[], Warehouse],
        attestations: AttestationSource | None,
        connectors_metrics: str,
        refresh_seconds: float,
    ) -> None:
        self.settings = settings
        self.auth = WebAuth(settings)
        self.session = warehouse_session
        self.attestations = attestations
        self.connectors_metrics = connectors_metrics
        self.refresh_ms = int(refresh_seconds * 1000)

    # --- auth -------------------------------------------------------------------------------------------
    def gate(self, request: Request, *, api: bool = False) -> Response | None:
        """None when the request may see the page; otherwise the response that explains or redirects."""
        supplied = request.query_params.get("token")
        if supplied is not None and not api:
            return self.token_login(request, supplied)
        state = self.auth.check(request)
        if state == "ok":
            return None
        if state == "unconfigured":
            return self.error(503, "No query token is configured, so the pages are closed.",
                              "Run `linked-artifacts up` once (it writes the token to "
                              f"{self.settings.secrets_file}) or set LINKED_ARTIFACTS_QUERY_TOKEN.", api=api)
        if api:
            return JSONResponse({"error": {"code": "unauthorized", "message": "log in again: the session "
                                           "expired or the query token changed"}}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)

    def token_login(self, request: Request, supplied: str) -> Response:
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        if not self.auth.token_matches(supplied):
            return self.login_page(401, error="The token in that link is not the query token.", next_path=target)
        return self.signed_in(request, target)

    def signed_in(self, request: Request, target: str) -> Response:
        response = RedirectResponse(target, status_code=303)
        value, max_age = self.auth.session_cookie()
        response.set_cookie(COOKIE, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        apply_headers(response)
        return response

    def login_page(self, status: int, *, error: str | None = None, next_path: str = "/artifacts") -> Response:
        context: dict[str, object] = {"title": "Log in", "nav": "", "error": error, "next": next_path,
                                      "secrets_file": str(self.settings.secrets_file), "params": {}}
        return page_response(render("login.html", context), status=status)

    # --- responses --------------------------------------------------------------------------------------
    def error(self, status: int, message: str, fix: str, *, api: bool = False) -> Response:
        if api:
            return JSONResponse({"error": {"code": "page_error", "message": message, "fix": fix}}, status_code=status)
        context: dict[str, object] = {"title": "Error", "nav": "", "status": status, "message": message, "fix": fix,
                                      "params": {}}
        return page_response(render("error.html", context), status=status)

    def failure(self, exc: Exception, *, api: bool = False) -> Response:
        """The page for an error a page function raised, naming the fix."""
        if isinstance(exc, pages.PageError):
            return self.error(exc.status, exc.message, exc.fix, api=api)
        if isinstance(exc, HTTPException):
            detail = str(exc.detail)
            fix = ("Start the worker without --no-sink so it owns ClickHouse." if "--no-sink" in detail
                   else "See the worker's log.")
            return self.error(exc.status_code, detail, fix, api=api)
        if isinstance(exc, WarehouseError):
            return self.error(503, f"ClickHouse did not answer: {exc.message}",
                              "Check that the worker is running and can reach ClickHouse "
                              f"({self.settings.clickhouse_dsn.split('@')[-1]}); its log is in "
                              f"{self.settings.data_dir / 'logs'}.", api=api)
        if isinstance(exc, LinkedArtifactsError):
            return self.error(exc.status or 400, exc.message, "Correct the request and try again.", api=api)
        raise exc

    async def run(self, build: Callable[[Warehouse], pages.Page], timer: Timer) -> tuple[pages.Page, int]:
        """A page function and the event count, in a worker thread on that thread's session."""

        queued = time.perf_counter()

        def work() -> tuple[pages.Page, int]:
            # Time waiting for a free thread: grows when more pages are asked for than threads can serve.
            timer.add("queue", time.perf_counter() - queued)
            warehouse = self.session()
            started = time.perf_counter()
            page = build(warehouse)
            counted = time.perf_counter()
            timer.add("db", counted - started)
            events = event_count(warehouse)
            timer.add("pulse", time.perf_counter() - counted)
            return page, events

        return await asyncio.to_thread(work)

    async def page(self, request: Request, build: Callable[[Warehouse], pages.Page], *,
                   timer: Timer | None = None) -> Response:
        denied = self.gate(request)
        if denied is not None:
            return denied
        timer = timer or Timer()
        try:
            page, events = await self.run(build, timer)
        except (pages.PageError, HTTPException, LinkedArtifactsError) as exc:
            return self.failure(exc)
        context = {**page.context, "body": page.body, "pulse": events, "refresh_ms": self.refresh_ms,
                   "live_url": "/web/live" + request.url.path + (f"?{request.url.query}" if request.url.query else "")}
        started = time.perf_counter()
        html = await asyncio.to_thread(render, page.template, context)
        timer.add("render", time.perf_counter() - started)
        return page_response(html, status=page.status, timer=timer)

    async def live(self, request: Request, build: Callable[[Warehouse], pages.Page]) -> Response:
        denied = self.gate(request, api=True)
        if denied is not None:
            return denied
        timer = Timer()
        try:
            page, events = await self.run(build, timer)
        except (pages.PageError, HTTPException, LinkedArtifactsError) as exc:
            return self.failure(exc, api=True)
        started = time.perf_counter()
        html = await asyncio.to_thread(render, page.body, {**page.context, "pulse": events})
        timer.add("render", time.perf_counter() - started)
        response = JSONResponse({"html": html, "events": events, "status": page.status})
        apply_headers(response, timer=timer)
        return response


def _params(request: Request) -> dict[str, Any]:
    """Query parameters; ``chip`` may repeat (one per toggled filter chip)."""
    params: dict[str, Any] = dict(request.query_params)
    params["chip"] = request.query_params.getlist("chip")
    return params


def _local_path(value: str) -> str:
    """A redirect target on this site only: a path, never //host or a scheme (no open redirect)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or any(ord(c) < 32 for c in value):
        return "/artifacts"
    return value


def mount_web(
    api: FastAPI,
    settings: Settings,
    *,
    warehouse_session: Callable[[], Warehouse],
    attestations: AttestationSource | None = None,
    connectors_metrics_url: str | None = None,
    refresh_seconds: float = REFRESH_SECONDS,
) -> None:
    """Add the pages to the query API (again: replace them).

    ``warehouse_session`` returns the calling thread's warehouse session (``QueryContext.session``); it
    is called inside worker threads. ``attestations`` serves the provenance links (None: the link says
    the bytes are not reachable from here). ``connectors_metrics_url`` defaults to the connectors'
    /metrics on this host.
    """
    web = _Web(settings, warehouse_session, attestations, connectors_metrics_url or metrics_url(settings),
               refresh_seconds)
    # Mounting again replaces the pages (routes are matched in order, so old ones would shadow new ones):
    # a test can mount its own fakes on an API that already has the pages.
    api.router.routes[:] = [r for r in api.router.routes if not getattr(r, "name", "").startswith(ROUTE_PREFIX)]
    api.mount("/web/static", StaticFiles(directory=STATIC), name="web.static")
    _auth_routes(api, web)
    _page_routes(api, web)
    _data_routes(api, web)
    _attestation_route(api, web)


def _auth_routes(api: FastAPI, web: _Web) -> None:
    @api.get("/", name="web.home", include_in_schema=False)
    async def home(request: Request) -> Response:
        denied = web.gate(request)
        return denied if denied is not None else RedirectResponse("/artifacts", status_code=303)

    @api.get("/login", name="web.login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        target = _local_path(request.query_params.get("next", "/artifacts"))
        supplied = request.query_params.get("token")
        if supplied is not None:
            if not web.auth.token_matches(supplied):
                return web.login_page(401, error="The token in that link is not the query token.", next_path=target)
            return web.signed_in(request, target)
        return web.login_page(200, next_path=target)

    @api.post("/login", name="web.login_form", include_in_schema=False)
    async def login(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return web.login_page(413, error="That form is too large to be a login.")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
        target = _local_path((form.get("next") or ["/artifacts"])[0])
        supplied = (form.get("token") or [""])[0].strip()
        if web.auth.token is None:
            return web.gate(request) or web.login_page(503)
        if not web.auth.token_matches(supplied):
            return web.login_page(401, error="That is not the query token. Copy it again from the file below.",
                                  next_path=target)
        return web.signed_in(request, target)

    @api.post("/logout", name="web.logout", include_in_schema=False)
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        apply_headers(response)
        return response


def _page_routes(api: FastAPI, web: _Web) -> None:
    @api.get("/artifacts", name="web.artifacts", include_in_schema=False)
    async def artifacts(request: Request) -> Response:
        params = _params(request)
        return await web.page(request, lambda wh: pages.artifacts_page(wh, params))

    @api.get("/artifacts/{digest:path}", name="web.artifact", include_in_schema=False)
    async def artifact(request: Request, digest: str) -> Response:
        params = _params(request)
        return await web.page(request, lambda wh: pages.artifact_page(wh, digest, params))

    @api.get("/triage", name="web.triage", include_in_schema=False)
    async def triage(request: Request) -> Response:
        params = _params(request)
        return await web.page(request, lambda wh: pages.triage_page(wh, params))

    @api.get("/overview", name="web.overview", include_in_schema=False)
    async def overview(request: Request) -> Response:
        denied = web.gate(request)
        if denied is not None:
            return denied
        timer = Timer()
        rejects = await fetch_rejects(web.connectors_metrics)
        timer.add("connectors", time.perf_counter() - timer.started)
        return await web.page(request, lambda wh: pages.overview_page(wh, rejects), timer=timer)

    @api.get("/web/live/{page:path}", name="web.live", include_in_schema=False)
    async def live(request: Request, page: str) -> Response:
        denied = web.gate(request, api=True)
        if denied is not None:
            return denied
        params = _params(request)
        build: Callable[[Warehouse], pages.Page]
        if page == "artifacts":
            build = lambda wh: pages.artifacts_page(wh, params)  # noqa: E731 - chosen per path
        elif page.startswith("artifacts/"):
            digest = page.removeprefix("artifacts/")
            build = lambda wh: pages.artifact_page(wh, digest, params)  # noqa: E731
        elif page == "triage":
            build = lambda wh: pages.triage_page(wh, params)  # noqa: E731
        elif page == "overview":
            rejects = await fetch_rejects(web.connectors_metrics)
            build = lambda wh: pages.overview_page(wh, rejects)  # noqa: E731
        else:
            return web.error(404, f"there is no live page {page!r}", "Use a page's own address.", api=True)
        return await web.live(request, build)


def _data_routes(api: FastAPI, web: _Web) -> None:
    @api.get("/web/pulse", name="web.pulse", include_in_schema=False)
    async def pulse(request: Request) -> Response:
        denied = web.gate(request, api=True)
        if denied is not None:
            return denied
        try:
            events = await asyncio.to_thread(lambda: event_count(web.session()))
        except (HTTPException, LinkedArtifactsError) as exc:
            return web.failure(exc, api=True)
        response = JSONResponse({"events": events})
        apply_headers(response)
        return response

    @api.get("/triage.csv", name="web.triage_csv", include_in_schema=False)
    async def triage_csv(request: Request) -> Response:
        denied = web.gate(request)
        if denied is not None:
            return denied
        params = _params(request)
        timer = Timer()
        try:
            text, filename = await asyncio.to_thread(lambda: pages.triage_csv(web.session(), params))
        except (HTTPException, LinkedArtifactsError) as exc:
            return web.failure(exc)
        timer.add("db", time.perf_counter() - timer.started)
        response = Response(text, media_type="text/csv; charset=utf-8")
        apply_headers(response, timer=timer,
                      headers={"Content-Disposition": f'attachment; filename="{filename}"'})
        return response



def _attestation_route(api: FastAPI, web: _Web) -> None:
    @api.get("/attestations/{sha256}", name="web.attestation", include_in_schema=False)
    async def attestation(request: Request, sha256: str) -> Response:
        denied = web.gate(request)
        if denied is not None:
            return denied
        hexpart = sha256.removeprefix("sha256:").lower()
        if not SHA256_HEX.match(hexpart):
            return web.error(422, f"{sha256[:80]!r} is not a sha256", "Follow the link on an artifact page.")
        if web.attestations is None:
            return web.error(503, "This query service has no access to the attestations topic.",
                             "Fetch the bytes from Kafka (the attestations topic, key = the sha256), or run the "
                             "worker with its Kafka settings so the page can.")
        try:
            found = await web.attestations.fetch(hexpart)
        except AttestationsUnavailable as exc:
            return web.error(503, str(exc), "Check that Kafka is running (`linked-artifacts up`) and try again.")
        if found is None:
            return web.error(404, f"No attestation with sha256 {hexpart} is kept.",
                             "It may predate the attestations topic's retention, or was never sent here.")
        response = Response(found, media_type="application/octet-stream")
        # Download, never render: the bytes are someone else's JSON.
        apply_headers(response, headers={
            "Content-Disposition": f'attachment; filename="attestation-{hexpart[:16]}.json"'})
        return response
