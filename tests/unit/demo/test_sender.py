"""The demo sender: retries 503 after Retry-After, reports every 4xx with its body, bounds concurrency, and
counts the events the connectors say they accepted."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx

from linked_artifacts.demo.requests import DemoRequest
from linked_artifacts.demo.sender import (
    MAX_CONNECT_RETRIES,
    MAX_RETRY_AFTER_S,
    Progress,
    SendReport,
    retry_after,
    send,
)

AT = datetime(2026, 5, 10, tzinfo=UTC)


def request(n: int = 0, *, events: int = 2, endpoint: str = "scans") -> DemoRequest:
    return DemoRequest(
        endpoint=endpoint,
        path="/events/scans",
        headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
        body=json.dumps({"n": n}).encode(),
        expected_events=events,
        label=f"request {n}",
        at=AT,
        query={},
        path_params={},
    )


def accepted(count: int) -> httpx.Response:
    return httpx.Response(202, json={"accepted": count, "event_ids": [str(i) for i in range(count)]})


async def run(
    handler: httpx.MockTransport, requests: list[DemoRequest], *, concurrency: int = 4, progress: Progress | None = None
) -> tuple[SendReport, list[float]]:
    sleeps: list[float] = []
    report = await send(
        requests,
        base_url="http://connectors.test",
        total_requests=len(requests),
        expected_events=sum(r.expected_events for r in requests),
        concurrency=concurrency,
        progress=progress,
        transport=handler,
        sleep=sleeps.append,
    )
    return report, sleeps


async def test_a_503_is_retried_after_its_retry_after() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "2"}, json={"error": {}}), accepted(2)])
    report, sleeps = await run(httpx.MockTransport(lambda _: next(answers)), [request()])
    assert sleeps == [2.0]
    assert report.retries == 1 and report.ok
    assert report.events_accepted == 2
    assert report.by_endpoint_status == {("scans", "202"): 1}


async def test_a_4xx_is_reported_with_its_body_counted_and_fails_the_run() -> None:
    body = {"error": {"code": "invalid_input", "message": "data.digest: required field is missing"}}
    stream = io.StringIO()
    report, _ = await run(
        httpx.MockTransport(lambda _: httpx.Response(422, json=body)),
        [request()],
        progress=Progress(stream, tty=False),
    )
    assert report.rejects == 1 and not report.ok
    assert "data.digest: required field is missing" in report.problems[0].body
    assert report.problems[0].status == 422
    assert "REJECTED" in stream.getvalue() and "request 0" in stream.getvalue()


async def test_connection_errors_are_retried_then_counted_as_a_failure() -> None:
    def refuse(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    report, sleeps = await run(httpx.MockTransport(refuse), [request()])
    assert report.failures == 1 and not report.ok
    assert report.retries == len(sleeps) == MAX_CONNECT_RETRIES
    assert report.problems[0].status is None


async def test_metadata_answers_and_ignored_deliveries_count_what_they_stored() -> None:
    answers = {
        0: httpx.Response(200, json={"total_count": 3, "deployment_records": [{}, {}, {}]}),
        1: httpx.Response(200, json={"ignored": True, "reason": "no vulnerabilities reported"}),
        2: accepted(1),  # announced 2: a count mismatch, reported but not a failure
    }
    report, _ = await run(
        httpx.MockTransport(lambda r: answers[json.loads(r.content)["n"]]),
        [request(0, events=3), request(1, events=0), request(2, events=2)],
    )
    assert report.events_accepted == 4
    assert report.count_mismatches == 1
    assert report.ok


async def test_no_more_than_concurrency_requests_are_in_flight() -> None:
    in_flight = peak = 0

    async def slow(_: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return accepted(2)

    report, _ = await run(httpx.MockTransport(slow), [request(n) for n in range(40)], concurrency=3)
    assert peak == 3
    assert report.done == 40 and report.events_accepted == 80


def test_retry_after_reads_seconds_and_http_dates_and_is_bounded() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) == 1.0
    assert retry_after("soon") == 1.0
    assert retry_after("100000") == MAX_RETRY_AFTER_S
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= retry_after(in_ten) <= 10.0


def test_progress_redraws_one_line_on_a_terminal_and_prints_lines_otherwise() -> None:
    report = SendReport(total_requests=10, expected_events=20, done=5, events_accepted=9)
    tty, log = io.StringIO(), io.StringIO()
    for progress in (Progress(tty, tty=True), Progress(log, tty=False)):
        progress.show(report)
        progress.show(report)
        progress.finish(report)
    assert tty.getvalue().count("\r") == 3 and tty.getvalue().endswith("\n")
    assert log.getvalue().count("\n") == 3 and "\r" not in log.getvalue()
    assert "5/10 requests" in log.getvalue() and "events accepted 9/20" in log.getvalue()
