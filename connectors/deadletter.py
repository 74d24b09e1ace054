"""Dead letters: input we refused, kept byte for byte with its reason, and replayed after a fix.

Only authenticated input is dead-lettered (a bad signature is logged, never stored). A record keeps the
headers a replay needs to pass the same checks again, and nothing else: never ``Authorization`` (a
replay adds the current token), and ``X-JFrog-Event-Auth`` only when it is an HMAC of the body (in plain
mode it *is* the secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from connectors import auth
from connectors.endpoints import endpoint_for_path
from linked_artifacts.avro import AvroCodec, DecodeError, SchemaRegistry
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import DeadLetter
from linked_artifacts.settings import ArtifactoryAuthMode, Settings
from linked_artifacts.topics import dead_letter_topic

STAGE = "connectors"
REPLAY_HEADER = "x-linked-artifacts-replay"
# Replay-relevant headers. CloudEvents binary mode carries its attributes in ce-* headers.
_KEEP = ("content-type", "x-github-event", "x-github-delivery", "x-hub-signature-256")
_CE_PREFIX = "ce-"
# Longest a replayed request may take: the connectors answer within their 8 s publish deadline.
REPLAY_HTTP_TIMEOUT_S = 15.0
ASSIGN_TIMEOUT_S = 10.0


class DeadLetterTopicMissing(LinkedArtifactsError):
    code = "dead_letter_topic_missing"


def dead_letter_id(endpoint: str, body: bytes) -> str:
    """sha256 of the endpoint and the raw body: the same input refused twice has the same id."""
    return hashlib.sha256(endpoint.encode() + b"\x00" + body).hexdigest()


def replay_headers(
    headers: Mapping[str, str], *, artifactory_auth_mode: ArtifactoryAuthMode
) -> dict[str, str]:
    """The headers worth keeping for a replay, lower-cased; never a bearer token or a plain secret."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _KEEP or lower.startswith(_CE_PREFIX):
            kept[lower] = value
        elif lower == auth.JFROG_AUTH_HEADER and artifactory_auth_mode == "hmac-sha256":
            kept[lower] = value
    return kept


def build_dead_letter(
    *,
    endpoint: str,
    body: bytes,
    reason: str,
    error_code: str,
    headers: Mapping[str, str],
    received_at: datetime,
    artifactory_auth_mode: ArtifactoryAuthMode,
    stage: str = STAGE,
) -> DeadLetter:
    kept = replay_headers(headers, artifactory_auth_mode=artifactory_auth_mode)
    return DeadLetter(
        dead_letter_id=dead_letter_id(endpoint, body),
        stage=stage,
        endpoint=endpoint,
        reason=reason,
        error_code=error_code,
        content_type=kept.get("content-type"),
        headers=kept,
        body=body,
        received_at=received_at,
    )


# --- replay -------------------------------------------------------------------------------------


@dataclass
class ReplaySummary:
    total: int = 0  # dead letters read from the topic
    sent: int = 0
    accepted: int = 0  # 2xx (including "ignored")
    rejected: int = 0  # 4xx: still refused, and dead-lettered again by the connectors
    failed: int = 0  # 5xx or no answer: try again later
    skipped: int = 0  # filtered out (since / endpoint / stage) or a repeat of an id already sent
    statuses: dict[int, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"replay: {self.total} dead letters, {self.sent} sent: {self.accepted} accepted, "
            f"{self.rejected} rejected, {self.failed} failed; {self.skipped} skipped"
        )


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def service_url(settings: Settings, port: int) -> str:
    """Base URL to reach one of our own HTTP services on ``port`` from this machine."""
    return f"http://{_reachable_host(settings.http_host)}:{port}"


def connectors_base_url(settings: Settings) -> str:
    return service_url(settings, settings.connectors_port)


def _reachable_host(host: str) -> str:
    # A wildcard bind address is not an address to connect to; the service listens on loopback too.
    if host in ("0.0.0.0", ""):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def replay_request_headers(settings: Settings, record: DeadLetter) -> dict[str, str]:
    """The stored headers plus the credential the endpoint checks today (never stored)."""
    headers = dict(record.headers)
    headers[REPLAY_HEADER] = record.dead_letter_id
    spec = endpoint_for_path(record.endpoint)
    if spec is None:
        return headers
    if spec.auth in ("bearer", "scans") and spec.scope is not None:
        for name in auth.BEARER_SCOPES[spec.scope]:
            token = settings.secret(name)
            if token:
                headers["authorization"] = f"Bearer {token}"
                break
    elif spec.auth == "artifactory" and settings.artifactory_auth_mode == "plain":
        secret = settings.secret("artifactory_secret")
        if secret:
            headers[auth.JFROG_AUTH_HEADER] = secret
    return headers


def _selected(record: DeadLetter, *, since: datetime | None, endpoint: str | None) -> bool:
    if record.stage != STAGE:
        return False  # the worker's dead letters are not HTTP requests
    if since is not None and record.received_at < since:
        return False
    return (
        endpoint is None
        or record.endpoint == endpoint
        or record.endpoint.startswith(endpoint.rstrip("/") + "/")
    )


async def _read_dead_letters(settings: Settings) -> list[bytes]:
    """Every record value on the dead-letter topic, from the beginning to the end as of now."""
    from aiokafka import AIOKafkaConsumer

    topic = dead_letter_topic(settings)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_servers,
        group_id=None,  # no group, no committed offsets: a replay never moves anyone's position
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,  # one dead letter can be 8 MiB
    )
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            raise DeadLetterTopicMissing(f"topic {topic} does not exist on {settings.kafka_servers}")
        # Without a group the consumer assigns itself every partition once it has the topic's metadata.
        deadline = time.monotonic() + ASSIGN_TIMEOUT_S
        while not consumer.assignment() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        if not tps:
            raise DeadLetterTopicMissing(f"no partitions of {topic} within {ASSIGN_TIMEOUT_S:g} s")
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        values: list[bytes] = []
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for messages in batches.values():
                values.extend(m.value for m in messages if m.value is not None)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return values
    finally:
        await consumer.stop()


async def replay_async(
    settings: Settings,
    *,
    since: datetime | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
    base_url: str | None = None,
    echo: Callable[[str], None] = _write,
) -> ReplaySummary:
    """Re-POST every dead letter (optionally only those since a time, or for one endpoint path or prefix)
    to the running connectors, with its stored headers and today's credential. Prints one line per record
    and a summary; returns the summary."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    registry = SchemaRegistry(settings.schema_registry_url)
    codec = AvroCodec(
        registry, subject=f"{dead_letter_topic(settings)}-value", schema_name="dead_letter", model=DeadLetter
    )
    records: list[DeadLetter] = []
    undecodable = 0
    try:
        for value in await _read_dead_letters(settings):
            try:
                records.append(codec.decode(value))
            except DecodeError as exc:  # keep going: one bad record must not block every replay
                undecodable += 1
                echo(f"replay: skipping an undecodable record: {exc.message}")
    finally:
        registry.close()
    summary = ReplaySummary(total=len(records) + undecodable, skipped=undecodable)
    target = (base_url or connectors_base_url(settings)).rstrip("/")
    echo(f"replay: {len(records)} dead letters on {dead_letter_topic(settings)}; target {target}")
    seen: set[str] = set()
    async with httpx.AsyncClient(timeout=REPLAY_HTTP_TIMEOUT_S) as client:
        for index, record in enumerate(records, start=1):
            short_id = record.dead_letter_id[:12]
            label = f"[{index}/{len(records)}] {record.endpoint} {short_id} ({record.error_code})"
            if record.dead_letter_id in seen or not _selected(record, since=since, endpoint=endpoint):
                summary.skipped += 1
                continue
            seen.add(record.dead_letter_id)
            if dry_run:
                echo(f"{label}: would send {len(record.body)} bytes")
                continue
            await _send_one(client, target, settings, record, summary, label, echo)
    echo(summary.line())
    return summary


async def _send_one(
    client: httpx.AsyncClient,
    target: str,
    settings: Settings,
    record: DeadLetter,
    summary: ReplaySummary,
    label: str,
    echo: Callable[[str], None],
) -> None:
    summary.sent += 1
    try:
        response = await client.post(
            target + record.endpoint, content=record.body, headers=replay_request_headers(settings, record)
        )
    except httpx.HTTPError as exc:
        summary.failed += 1
        echo(f"{label}: no answer: {exc!r}")
        return
    status = response.status_code
    summary.statuses[status] = summary.statuses.get(status, 0) + 1
    if status < 300:
        summary.accepted += 1
    elif status < 500:
        summary.rejected += 1
    else:
        summary.failed += 1
    echo(f"{label}: {status} {response.text[:200]}")


def replay(
    settings: Settings,
    *,
    since: datetime | None = None,
    endpoint: str | None = None,
    dry_run: bool = False,
) -> ReplaySummary:
    """Blocking entry point for the CLI (``linked-artifacts replay``)."""
    return asyncio.run(replay_async(settings, since=since, endpoint=endpoint, dry_run=dry_run))
