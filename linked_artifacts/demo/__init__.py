"""``linked-artifacts demo``: a realistic organisation, told to the running connectors.

- ``org``: the deterministic model (repositories, releases, images, deployments, scans, alerts) and
  ``expected_summary``, the answers the system must give for it;
- ``requests``: the model as signed HTTP requests, one per webhook, record, report or batch;
- ``sender``: posts them with bounded concurrency, retries, progress and a final report.

``run_demo`` wires them together for the CLI.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import httpx

from linked_artifacts.demo.org import Org, build_org, expected_summary
from linked_artifacts.demo.requests import Credentials, DemoError, RequestPlan, build_plan
from linked_artifacts.demo.sender import DEFAULT_CONCURRENCY, Progress, SendReport, send
from linked_artifacts.settings import Settings

__all__ = ["DemoError", "connectors_url", "parse_now", "run_demo"]

# `up` prints its banner once the connectors answer /healthz; Kafka may still be settling, so wait a while.
READY_TIMEOUT_S = 60.0
# Clocks differ a little between machines; more than this ahead is a mistake, not skew.
FUTURE_SLACK = timedelta(minutes=5)
_PLURALS = {"service": "services", "worker": "workers", "library": "libraries"}


def parse_now(text: str | None) -> datetime:
    """``--now``: ISO 8601 (``Z`` or an offset; UTC when none), or the current time."""
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DemoError(f"--now: {text!r} is not an ISO 8601 time (e.g. 2026-05-10T12:00:00Z)") from exc
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def connectors_url(settings: Settings) -> str:
    return _service_url(settings, settings.connectors_port)


def _service_url(settings: Settings, port: int) -> str:
    # A wildcard bind address is not one to connect to; the service listens on loopback too.
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "", "::") else settings.http_host  # noqa: S104
    return f"http://{host}:{port}"


def run_demo(
    settings: Settings,
    *,
    events: int,
    seed: int,
    url: str | None,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    now: datetime | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Generate the organisation and send it (or describe it with ``dry_run``). Returns the exit code.
    ``out`` gets the plan or the final report, ``err`` the progress (default: stdout and stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    now = now or parse_now(None)
    if now > datetime.now(UTC) + FUTURE_SLACK:
        raise DemoError(
            f"--now {now.isoformat()} is in the future. The metadata API stamps its records with the time it "
            "receives them, so the history must end before that; omit --now or give a past time"
        )
    started = time.monotonic()
    credentials = Credentials.placeholder() if dry_run else Credentials.from_settings(settings)
    # Generation makes millions of small objects without cycles for a large --events; the cyclic collector
    # would rescan the growing heap over and over (about half the time at a million events). The model then
    # lives until the end, so it is frozen out of every later collection.
    gc.disable()
    try:
        org = build_org(seed=seed, now=now, target_events=events)
        plan = build_plan(org, credentials)
        summary = expected_summary(org)
    finally:
        gc.freeze()
        gc.enable()
    base_url = (url or connectors_url(settings)).rstrip("/")
    err.write(f"demo: generated {describe_size(org, summary)} in {time.monotonic() - started:.1f}s\n")
    if dry_run:
        out.write(describe_plan(org, plan, summary, base_url))
        return 0
    wait_until_ready(base_url, err)
    report = asyncio.run(
        send(
            plan,
            base_url=base_url,
            total_requests=len(plan),
            expected_events=plan.expected_events,
            concurrency=concurrency,
            progress=Progress(err),
        )
    )
    out.write(describe_report(report, base_url, summary, settings))
    return 0 if report.ok else 1


def wait_until_ready(base_url: str, err: IO[str]) -> None:
    """Wait for the connectors' /readyz (Kafka and the registry reachable); fail with the fix if nobody answers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    said = False
    last = ""
    while True:
        try:
            answer = httpx.get(f"{base_url}/readyz", timeout=5.0)
            if answer.status_code != 503:
                return  # ready, or a --url service without /readyz: sending will tell
            last = "not ready yet (Kafka or the schema registry unreachable)"
        except httpx.HTTPError as exc:
            last = f"not answering ({type(exc).__name__})"
        if time.monotonic() >= deadline:
            raise DemoError(
                f"the connectors at {base_url} are {last}. Fix: start the system with `linked-artifacts up` "
                "(same LINKED_ARTIFACTS_* settings), or pass --url"
            )
        if not said:
            err.write(f"demo: waiting for the connectors at {base_url}: {last}\n")
            said = True
        time.sleep(1.0)


def describe_size(org: Org, summary: dict[str, Any]) -> str:
    return (
        f"{summary['repositories']} repositories, {summary['releases']} releases, {summary['digests']} digests, "
        f"{len(org.deployments)} deployment changes, {sum(summary['alerts'].values())} alerts "
        f"({summary['events']} events)"
    )


def describe_plan(org: Org, plan: RequestPlan, summary: dict[str, Any], base_url: str) -> str:
    kinds: dict[str, int] = {}
    for repo in org.repositories:
        kinds[repo.kind] = kinds.get(repo.kind, 0) + 1
    by_env = summary["active_slots_by_environment"]
    lines = [
        f"Demo organisation (seed {org.seed}): 30 days ending {org.now.isoformat()}",
        f"  {summary['repositories']} repositories in {summary['teams']} teams: "
        + ", ".join(f"{n} {_PLURALS[k] if n != 1 else k}" for k, n in sorted(kinds.items())),
        f"  {summary['releases']} releases from {summary['workflow_runs']} workflow run attempts; "
        f"{summary['index_digests']} multi-arch images (index + linux/amd64 + linux/arm64), "
        f"{summary['single_platform_digests']} single-platform images, {summary['package_digests']} packages",
        f"  {summary['clusters']} clusters, {summary['slots']} deployment slots: {summary['active_slots']} active "
        f"(dev {by_env['dev']}, staging {by_env['staging']}, prod {by_env['prod']}), "
        f"{summary['decommissioned_slots']} decommissioned, {summary['superseded_deployments']} takeovers",
        "  alerts: "
        + ", ".join(f"{tool} {n}" for tool, n in summary["alerts"].items())
        + f"; {summary['open_critical_alerts_internet_exposed_prod']} open critical on internet-exposed prod "
        f"workloads ({', '.join(summary['critical_cves_internet_exposed_prod']) or 'none'})",
        "",
        f"Would send to {base_url} (dry run, nothing sent):",
        f"  {'endpoint':<28}{'requests':>10}{'events':>10}",
    ]
    for endpoint, (requests, events) in plan.by_endpoint.items():
        lines.append(f"  {endpoint:<28}{requests:>10}{events:>10}")
    lines.append(f"  {'total':<28}{len(plan):>10}{plan.expected_events:>10}")
    return "\n".join(lines) + "\n"


def describe_report(report: SendReport, base_url: str, summary: dict[str, Any], settings: Settings) -> str:
    lines = [
        f"Sent {report.done} requests to {base_url} in {report.elapsed:.1f}s ({report.requests_per_second:.0f} req/s)",
        f"  {'endpoint':<28}{'status':>8}{'requests':>10}",
    ]
    for (endpoint, status), count in sorted(report.by_endpoint_status.items()):
        lines.append(f"  {endpoint:<28}{status:>8}{count:>10}")
    lines.append(
        f"events accepted: {report.events_accepted} of {report.expected_events} expected, "
        f"{report.events_per_second:.0f} events/s"
    )
    lines.append(f"rejects (4xx): {report.rejects}, failures: {report.failures}, retries: {report.retries}")
    if report.count_mismatches:
        lines.append(
            f"warning: {report.count_mismatches} accepted requests made a different number of events than expected"
        )
    lines.extend(
        f"  {problem.status or 'no answer'} {problem.endpoint} {problem.label}: {problem.body}"
        for problem in report.problems[:10]
    )
    if len(report.problems) > 10:
        lines.append(f"  ... and {len(report.problems) - 10} more")
    if report.ok:
        query = _service_url(settings, settings.query_port)
        lines += [
            "",
            f"Known answer: {summary['open_critical_alerts_internet_exposed_prod']} open critical alerts on "
            f"internet-exposed prod workloads, {summary['active_prod_slots']} active prod deployments. Try "
            f"(query_token is in {settings.secrets_file}):",
            f"  curl -H 'Authorization: Bearer <query_token>' '{query}/v1/alerts?q=is:open+severity:critical"
            "+has:deployment+environment:prod+runtime-risk:internet-exposed'",
        ]
    return "\n".join(lines) + "\n"
