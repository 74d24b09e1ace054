"""Rejects by reason, read from the connectors' Prometheus counters (``connectors/metrics.py``).

Rejected input never reaches ClickHouse (a bad signature is not stored at all; other rejects go to the
dead-letter topic), so the connectors' own counters are the only place that knows them. The worker reads
them over loopback on each overview render, with a short timeout: a slow or absent connectors process
must not slow the page, it only makes the chart say so.
"""

from __future__ import annotations

import ssl
from functools import cache
from typing import Final, NamedTuple

import httpx
from prometheus_client.parser import text_string_to_metric_families

from linked_artifacts.settings import Settings

REJECTS_METRIC: Final = "linked_artifacts_connector_rejects"
# Loopback answers in milliseconds; anything slower is a connectors process in trouble.
FETCH_TIMEOUT_S: Final = 0.5


class RejectCount(NamedTuple):
    endpoint: str
    reason: str
    code: str
    requests: int


class Rejects(NamedTuple):
    """Rejected requests since the connectors started, or why they could not be read."""

    url: str
    counts: tuple[RejectCount, ...]
    error: str | None = None

    def by_reason(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for count in self.counts:
            totals[count.reason] = totals.get(count.reason, 0) + count.requests
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def metrics_url(settings: Settings) -> str:
    # A wildcard bind address is not one to connect to; the connectors listen on loopback too.
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "", "::") else settings.http_host  # noqa: S104
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.connectors_port}/metrics"


def parse_rejects(text: str) -> tuple[RejectCount, ...]:
    """The reject counters of a Prometheus text exposition (``*_total`` samples)."""
    counts: list[RejectCount] = []
    for family in text_string_to_metric_families(text):
        if family.name != REJECTS_METRIC:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            counts.append(RejectCount(labels.get("endpoint", ""), labels.get("reason", ""), labels.get("code", ""),
                                      int(sample.value)))
    return tuple(sorted(counts, key=lambda c: (-c.requests, c.reason, c.endpoint, c.code)))


@cache
def _tls() -> ssl.SSLContext:
    # Loading the CA bundle costs ~60 ms; a new client per render would pay it on every overview.
    return ssl.create_default_context()


async def fetch_rejects(url: str, *, client: httpx.AsyncClient | None = None) -> Rejects:
    """Read the reject counters; on any failure the result carries the error instead of counts."""
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_S, verify=_tls()) as own:
                response = await own.get(url)
        else:
            response = await client.get(url, timeout=FETCH_TIMEOUT_S)
        response.raise_for_status()
        return Rejects(url, parse_rejects(response.text))
    except httpx.HTTPError as exc:
        return Rejects(url, (), f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    except ValueError as exc:  # the text parser's error for a malformed exposition
        return Rejects(url, (), f"unreadable metrics: {exc}")
