"""Sends the demo's requests to the running connectors and reports what they made of them.

``send`` posts every request with at most ``concurrency`` in flight (arrival order is therefore not event
order, which the system must not rely on anyway). A 503 or 429 is retried after the answer's ``Retry-After``
(the connectors answer 503 while Kafka is unavailable, and when more requests are in flight than they
serve at once); a connection error is retried with backoff. Any 4xx is a bug in the generator, never
expected: it is reported at once with the connectors' answer, counted, and makes the run fail.

Progress goes to stderr: one line updated in place on a terminal, otherwise a line every few seconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, NamedTuple

import httpx

from linked_artifacts.demo.requests import DemoRequest

__all__ = ["DEFAULT_CONCURRENCY", "Progress", "Rejection", "SendReport", "send"]

# Eight requests in flight keep the connectors busy on a 2-core machine without queueing in uvicorn;
# the connectors themselves answer 503 past 64 concurrent requests.
DEFAULT_CONCURRENCY = 8
# The connectors answer only after Kafka acknowledged (publish deadline 8 s), so allow well past that.
REQUEST_TIMEOUT_S = 30.0
RETRY_STATUSES = frozenset({429, 503})
# Kafka restarting can take a minute: 12 retries at up to 30 s each outlast it.
MAX_RETRIES = 12
MAX_RETRY_AFTER_S = 30.0
DEFAULT_RETRY_AFTER_S = 1.0
MAX_CONNECT_RETRIES = 6
TTY_INTERVAL_S = 0.25
LOG_INTERVAL_S = 5.0
# How much of a refusal's body is shown: the connectors' error JSON names the field in far less.
REJECT_BODY_CHARS = 600


class Rejection(NamedTuple):
    """A request the connectors did not accept."""

    endpoint: str
    label: str
    status: int | None  # None: no answer (connection failures outlasted the retries)
    body: str


@dataclass
class SendReport:
    """What happened to every request."""

    total_requests: int
    expected_events: int
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    done: int = 0
    events_accepted: int = 0
    retries: int = 0
    rejects: int = 0  # 4xx: the generator's bug
    failures: int = 0  # 5xx other than retried ones, or no answer at all
    count_mismatches: int = 0  # 2xx whose accepted count differs from the request's expected_events
    by_endpoint_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    events_by_endpoint: Counter[str] = field(default_factory=Counter)
    problems: list[Rejection] = field(default_factory=list)

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def events_per_second(self) -> float:
        return self.events_accepted / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.rejects == 0 and self.failures == 0

    def line(self) -> str:
        share = 100 * self.done / self.total_requests if self.total_requests else 100.0
        return (
            f"demo: {self.done}/{self.total_requests} requests ({share:.0f}%), {self.requests_per_second:.0f} req/s; "
            f"events accepted {self.events_accepted}/{self.expected_events} ({self.events_per_second:.0f}/s); "
            f"rejects {self.rejects}, failures {self.failures}, retries {self.retries}"
        )


class Progress:
    """The progress line on ``stream``: redrawn in place on a terminal, else printed every few seconds."""

    def __init__(self, stream: IO[str], *, tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self._drawn = False

    def show(self, report: SendReport) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + report.line())
            self._drawn = True
        else:
            self.stream.write(report.line() + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line of its own (a rejection), without garbling the line being redrawn."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self, report: SendReport) -> None:
        self.show(report)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._drawn = False


async def send(
    requests: Iterable[DemoRequest],
    *,
    base_url: str,
    total_requests: int,
    expected_events: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Progress | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> SendReport:
    """Post every request; returns the report. ``transport`` and ``sleep`` are for tests."""
    report = SendReport(total_requests=total_requests, expected_events=expected_events)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits, transport=transport
    ) as client:
        sender = _Sender(client, report, progress, sleep)
        iterator = iter(requests)
        ticker = asyncio.create_task(sender.tick(progress)) if progress is not None else None
        try:
            await asyncio.gather(*(sender.worker(iterator) for _ in range(max(1, concurrency))))
        finally:
            if ticker is not None:
                ticker.cancel()
            report.finished = time.monotonic()
    if progress is not None:
        progress.finish(report)
    return report


class _Sender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        report: SendReport,
        progress: Progress | None,
        sleep: Callable[[float], object],
    ) -> None:
        self.client = client
        self.report = report
        self.progress = progress
        self.sleep = sleep

    async def tick(self, progress: Progress) -> None:
        while True:
            await asyncio.sleep(progress.interval)
            progress.show(self.report)

    async def worker(self, requests: Iterator[DemoRequest]) -> None:
        # Workers share one iterator: next() never awaits, so two workers never run the generator at once.
        for request in requests:
            await self.post(request)

    async def pause(self, seconds: float) -> None:
        result = self.sleep(seconds)
        if asyncio.iscoroutine(result):
            await result

    async def post(self, request: DemoRequest) -> None:
        report = self.report
        attempts = connect_failures = 0
        while True:
            try:
                response = await self.client.post(
                    request.path, content=request.body, headers=dict(request.headers), params=dict(request.query)
                )
            except httpx.TransportError as exc:
                connect_failures += 1
                if connect_failures > MAX_CONNECT_RETRIES:
                    self.settle(request, None, f"{type(exc).__name__}: {exc}")
                    return
                report.retries += 1
                await self.pause(min(0.25 * 2**connect_failures, 8.0))
                continue
            if response.status_code in RETRY_STATUSES and attempts < MAX_RETRIES:
                attempts += 1
                report.retries += 1
                await self.pause(retry_after(response.headers.get("retry-after")))
                continue
            self.settle(request, response.status_code, response.text, response=response)
            return

    def settle(
        self, request: DemoRequest, status: int | None, body: str, *, response: httpx.Response | None = None
    ) -> None:
        report = self.report
        report.done += 1
        report.by_endpoint_status[(request.endpoint, str(status) if status is not None else "no answer")] += 1
        if status is not None and 200 <= status < 300 and response is not None:
            accepted = accepted_events(response)
            report.events_accepted += accepted
            report.events_by_endpoint[request.endpoint] += accepted
            if accepted != request.expected_events:
                report.count_mismatches += 1
            return
        rejection = Rejection(request.endpoint, request.label, status, body[:REJECT_BODY_CHARS])
        if status is not None and 400 <= status < 500:
            report.rejects += 1
            what = "REJECTED (a bug in the demo generator)"
        else:
            report.failures += 1
            what = "FAILED"
        report.problems.append(rejection)
        if self.progress is not None:
            shown = status if status is not None else "no answer"
            self.progress.message(f"demo: {what}: {shown} from {request.path} for {request.label}: {rejection.body}")


def accepted_events(response: httpx.Response) -> int:
    """Events the connectors stored: ``accepted`` of a 202, ``total_count`` of a metadata API answer, 0 when
    the delivery was acknowledged and ignored."""
    try:
        body = response.json()
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return 0
    for key in ("accepted", "total_count"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def retry_after(value: str | None) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), bounded."""
    if not value:
        return DEFAULT_RETRY_AFTER_S
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
