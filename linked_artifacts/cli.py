"""The `linked-artifacts` command. Every subcommand has --help; errors are one line that names the fix."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import SecretStr, ValidationError

from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import Settings, load_settings

if TYPE_CHECKING:
    from history.export import ExportFormat, ExportWriter

F = TypeVar("F", bound=Callable[..., Any])


def say(message: str) -> None:
    click.echo(message, err=False)


def friendly_errors(func: F) -> F:
    """Expected failures print one line (and context) instead of a stack trace."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LinkedArtifactsError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(1)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            click.echo(f"error: setting {where}: {first['msg']} (see `linked-artifacts settings --help`)", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    return load_settings()


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """Linked Artifacts: every build artifact, by digest, linked to where it is stored, how it was built,
    where it runs and which alerts apply, with the full history.

    Settings come from LINKED_ARTIFACTS_* environment variables and an optional linked-artifacts.toml;
    `linked-artifacts settings` shows them all.
    """


@main.command()
@friendly_errors
def up() -> None:
    """Run the whole system here, in the foreground: Kafka (KRaft), Apicurio Registry, ClickHouse (chDB),
    the worker and the connectors. Downloads the JVM parts once into the cache directory. Ctrl-C stops it.

    External Kafka, registry or ClickHouse are used instead when LINKED_ARTIFACTS_KAFKA_BOOTSTRAP_SERVERS,
    LINKED_ARTIFACTS_REGISTRY_URL or LINKED_ARTIFACTS_CLICKHOUSE_URL are set.
    """
    from linked_artifacts import log
    from linked_artifacts.up import run_up

    settings = _settings()
    log.configure(settings, process="up")
    sys.exit(run_up(settings, say))


@main.command()
@click.option("--no-sink", is_flag=True, help="Do not write ClickHouse (a second worker on embedded chDB).")
@click.option("--no-api", is_flag=True, help="Do not serve the query API.")
@friendly_errors
def worker(no_sink: bool, no_api: bool) -> None:
    """Run the stream processors: join every event by digest into linked-artifact state, publish it on the
    enriched topic, and sink the history into ClickHouse. Also serves the query API unless --no-api.
    The Faust linker runs in a child process; this one owns ClickHouse. Run more workers (with --no-sink on
    embedded chDB: the linker alone) to share the partitions.

    Exits with code 1 when a part fails, a batch the linker could not finish included (its log names the
    record and the fix); the next start folds that batch again."""
    from linked_artifacts import log
    from linked_artifacts.stack.ports import require_free
    from pipeline.worker import run

    settings = _settings()
    log.configure(settings, process="worker")
    if not no_api:
        # Before Kafka, the registry and ClickHouse are touched: a taken port is the one thing to fix.
        require_free(settings.http_host, settings.query_port, what="the worker's query API",
                     setting="LINKED_ARTIFACTS_QUERY_PORT")
    run(settings, with_sink=not no_sink, with_api=not no_api)


@main.command()
@friendly_errors
def connectors() -> None:
    """Run the HTTP edge: webhooks (GitHub, Artifactory), GitHub's artifact metadata API, attestations,
    CloudEvents, Kubernetes and scanner reports, each turned into canonical Avro events on Kafka."""
    from connectors.app import run
    from linked_artifacts import log
    from linked_artifacts.stack.ports import require_free

    settings = _settings()
    log.configure(settings, process="connectors")
    require_free(settings.http_host, settings.connectors_port, what="the connectors",
                 setting="LINKED_ARTIFACTS_CONNECTORS_PORT")
    run(settings)


@main.command()
@click.option("--since", type=click.DateTime(), default=None, help="Only dead letters received at or after (UTC).")
@click.option("--endpoint", default=None, help="Only dead letters of this endpoint path, e.g. /webhooks/github.")
@click.option("--dry-run", is_flag=True, help="List what would be resent; send nothing.")
@friendly_errors
def replay(since: Any, endpoint: str | None, dry_run: bool) -> None:
    """Resend dead-lettered input to the running connectors, after a fix. Reads the dead-letter topic from
    the beginning and POSTs each raw body with its stored headers (and the current token)."""
    from datetime import UTC

    from connectors.deadletter import replay as run_replay

    when = since.replace(tzinfo=UTC) if since is not None else None
    summary = run_replay(_settings(), since=when, endpoint=endpoint, dry_run=dry_run)
    sys.exit(1 if summary.failed else 0)


@main.command()
@click.option(
    "--events",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="About how many canonical events to generate; the organisation is sized to it (millions for benchmarks).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed (and --now), same organisation.")
@click.option("--url", default=None, help="Connectors base URL. Default: http://<http_host>:<connectors_port>.")
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=8, show_default=True, help="Requests in flight at once."
)
@click.option(
    "--now", "now", default=None, help="End of the 30 days of history (ISO 8601, UTC if no zone). Default: now."
)
@click.option("--dry-run", is_flag=True, help="Print what would be sent; send nothing.")
@friendly_errors
def demo(events: int, seed: int, url: str | None, concurrency: int, now: str | None, dry_run: bool) -> None:
    """Generate a realistic organisation (repositories, multi-arch images and packages in Artifactory and
    GHCR, builds with provenance, deployments across clusters with runtime risks, scanner and Dependabot
    alerts with CVSS/EPSS) and send it through the running connectors with valid signatures and tokens.
    Shows progress on stderr and ends with counts per endpoint and the measured events/s. Exit code 1 if
    the connectors refused anything."""
    from linked_artifacts.demo import parse_now, run_demo

    code = run_demo(
        _settings(),
        events=events,
        seed=seed,
        url=url,
        concurrency=concurrency,
        dry_run=dry_run,
        now=parse_now(now),
    )
    sys.exit(code)


def _ask(http: Callable[[Any], Any], direct: Callable[[Any], Any]) -> Any:
    """Run a question through the running query service, or on ClickHouse directly when nothing runs."""
    from linked_artifacts.query_client import QueryClient

    settings = _settings()
    client = QueryClient(settings)
    if client.running():
        return http(client)
    from history.client import Warehouse

    with Warehouse.open(settings) as warehouse:
        return direct(warehouse)


def _table(columns: list[str], rows: list[list[Any]], *, width: int = 60) -> str:
    cells = [[("" if v is None else str(v))[:width] for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


@main.command()
@click.argument("query")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option("--max-rows", default=10_000, show_default=True, help="Refuse results larger than this.")
@click.option("--max-seconds", default=30.0, show_default=True, help="Stop queries that run longer.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Value of a {NAME:Type} placeholder in the query, bound by ClickHouse (repeatable).",
)
@friendly_errors
def sql(query: str, fmt: str, max_rows: int, max_seconds: float, params: tuple[str, ...]) -> None:
    """Run one read-only SQL query over the history (ClickHouse enforces read-only).

    Example: linked-artifacts sql "SELECT source, count() FROM events GROUP BY source"

    With a parameter: linked-artifacts sql --param digest=sha256:... "SELECT * FROM storage_current WHERE
    digest = {digest:String}". The README's "Ten questions for the history" are ready to run this way.
    """
    import json

    from history.sql import SqlResult, format_csv, format_jsonl, run_readonly_sql

    parameters = _parameters(params)

    def http(client: Any) -> dict[str, Any]:
        body = {
            "sql": query,
            "format": "json",
            "max_rows": max_rows,
            "max_seconds": max_seconds,
            "parameters": parameters,
        }
        result: dict[str, Any] = client.call("POST", "/v1/sql", json=body).json()
        return result

    def direct(warehouse: Any) -> dict[str, Any]:
        result: SqlResult = run_readonly_sql(
            warehouse, query, max_rows=max_rows, max_seconds=max_seconds, parameters=parameters
        )
        return result.as_dict()

    result = _ask(http, direct)
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
        return
    rebuilt = SqlResult(
        columns=tuple(result["columns"]),
        types=tuple(result["types"]),
        rows=tuple(tuple(r) for r in result["rows"]),
        truncated=result["truncated"],
        elapsed_ms=result["elapsed_ms"],
    )
    if fmt == "csv":
        click.echo(format_csv(rebuilt), nl=False)
    elif fmt == "jsonl":
        click.echo(format_jsonl(rebuilt), nl=False)
    else:
        click.echo(_table(result["columns"], result["rows"]))
        click.echo(
            f"({result['row_count']} rows{', truncated' if result['truncated'] else ''}, {result['elapsed_ms']} ms)",
            err=True,
        )


def _parameters(pairs: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise LinkedArtifactsError(f"--param {pair!r}: write NAME=VALUE, e.g. --param digest=sha256:...")
        found[name.strip()] = value
    return found


@main.command()
@click.argument("query", default="")
@click.option("--limit", default=20, show_default=True, help="Alerts to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@friendly_errors
def alerts(query: str, limit: int, as_json: bool) -> None:
    """Alerts ranked for triage, with GitHub's filter vocabulary.

    Example: linked-artifacts alerts "has:deployment runtime-risk:internet-exposed severity:critical is:open"
    """
    import json

    from history.alerts import search_alerts

    def http(client: Any) -> dict[str, Any]:
        found: dict[str, Any] = client.call("GET", "/v1/alerts", params={"q": query, "limit": limit}).json()
        return found

    def direct(warehouse: Any) -> dict[str, Any]:
        return search_alerts(warehouse, query, limit=limit).model_dump(mode="json")

    found = _ask(http, direct)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    rows = [
        [a["rank"], a["score"], a["severity"], a["vulnerability_id"], a["subject"][:19], "; ".join(a["reasons"])]
        for a in found["results"]
    ]
    click.echo(_table(["rank", "score", "severity", "vulnerability", "artifact", "why"], rows, width=110))
    click.echo(f"({len(rows)} of {found['total_count']} matching alerts)", err=True)


@main.command()
@click.argument("digest")
@click.option("--history", "history_limit", default=20, show_default=True, help="Recent history events to show.")
@friendly_errors
def show(digest: str, history_limit: int) -> None:
    """The linked view of one artifact: storage, builds and provenance, deployments with runtime risks,
    alerts, linked index/platform digests and recent history. Any linked digest finds the same artifact."""
    import json

    from history.linked_view import linked_view
    from linked_artifacts.digests import normalise_digest

    wanted = normalise_digest(digest)

    def http(client: Any) -> Any:
        return client.call("GET", f"/v1/artifacts/{wanted}", params={"history_limit": history_limit}).json()

    def direct(warehouse: Any) -> Any:
        return linked_view(warehouse, wanted, history_limit=history_limit)

    view = _ask(http, direct)
    if view is None:
        raise LinkedArtifactsError(f"nothing is known about {wanted}. Has anything sent it?")
    click.echo(json.dumps(view, indent=2, default=str))


def _when(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time from the command line; UTC when it names no zone."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise LinkedArtifactsError(
            f"{option} {value!r} is not a time: use ISO 8601, e.g. 2026-05-01 or 2026-05-01T12:00:00Z"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _digest_lines(handle: Any) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in handle)
    return [line for line in lines if line]


class _ExportProgress:
    """Progress of a long export on stderr: at most one line a second while a file grows, one when it ends."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, stem: str, records: int, done: bool) -> None:
        now = time.monotonic()
        if done or now - self._last >= 1.0:
            self._last = now
            click.echo(f"export: {stem}: {records:,} records{' (done)' if done else ''}", err=True)


def _export_from_stream(
    lines: Iterable[str], directory: Path, fmt: ExportFormat, progress: _ExportProgress
) -> dict[str, Any]:
    """Write the files of a ``POST /v1/export`` stream. Only a stream that reached its end line gets a
    manifest, so an interrupted export never passes for a complete one."""
    import json

    from history.export import ExportPlan, ExportWriter
    from linked_artifacts.query_client import QueryFailed

    writer: ExportWriter | None = None
    database = ""
    for line in lines:
        if not line:
            continue
        item = json.loads(line)
        if "plan" in item:
            database = str(item.get("database", ""))
            writer = ExportWriter(directory, fmt=fmt, plan=ExportPlan.from_dict(item["plan"]), progress=progress)
        elif writer is None:
            break
        elif "end" in item:
            return writer.finish(database=database)
        else:
            writer.add(str(item["file"]), item["record"])
    raise QueryFailed(
        "the export stream from the query service ended early; no manifest.json was written. Fix: run the "
        "export again (see data/logs/worker.log if it keeps failing)"
    )


@main.command("export")
@click.option("--since", default=None, help="Only events at or after this time (ISO 8601; UTC if no zone).")
@click.option("--until", default=None, help="Only events before this time (ISO 8601; UTC if no zone).")
@click.option(
    "--digest",
    "digests",
    multiple=True,
    help="A digest to export (repeatable). Its family (image index and platforms) and the workflow runs "
    "of its builds come with it.",
)
@click.option(
    "--digests-file",
    type=click.File("r"),
    default=None,
    help="A file of digests, one a line ('-' reads stdin; # starts a comment).",
)
@click.option("--all", "everything", is_flag=True, help="Export the whole history (no range, no digests).")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True, help="File format."
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for the files and manifest.json (created if missing).",
)
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
@friendly_errors
def export_command(
    since: str | None,
    until: str | None,
    digests: tuple[str, ...],
    digests_file: Any,
    everything: bool,
    fmt: str,
    out_dir: Path,
    overwrite: bool,
) -> None:
    """Audit export: the provenance, storage and deployment records of the history, for a time range
    and/or a set of digests, as JSON lines or CSV, with manifest.json (what was asked, and per file its
    record count, size and sha256).

    \b
    Examples:
      linked-artifacts export --since 2026-04-01 --until 2026-05-01 --out audit-april
      linked-artifacts export --digest sha256:<hex> --format csv --out audit-payments
      linked-artifacts export --digests-file release-digests.txt --out audit-release

    Writes provenance, storage and deployments files (.jsonl or .csv) and manifest.json. Progress goes to
    stderr. Asks the running worker's query API when `up` runs (it owns the embedded ClickHouse), else
    reads ClickHouse itself.
    """
    from history.export import (
        ExportError,
        ExportWriter,
        check_range,
        export_records,
        normalise_digests,
        plan_export,
        prepare_out_dir,
    )
    from linked_artifacts.query_client import QueryClient

    chosen = list(digests) + (_digest_lines(digests_file) if digests_file is not None else [])
    start, end = _when(since, "--since"), _when(until, "--until")
    check_range(start, end)
    if digests_file is not None and not chosen:
        raise ExportError(f"{digests_file.name} names no digest: one digest a line", field="digests")
    selected = chosen if (chosen or digests_file is not None) else None
    if selected is not None:
        normalise_digests(selected)  # refuse a malformed digest before anything is written
    if selected is None and start is None and end is None and not everything:
        raise ExportError(
            "name what to export: --since/--until, --digest or --digests-file (or --all for the whole history)",
            field="since",
        )
    file_format: ExportFormat = "csv" if fmt == "csv" else "jsonl"
    directory = prepare_out_dir(out_dir, overwrite=overwrite)
    progress = _ExportProgress()
    settings = _settings()
    client = QueryClient(settings)
    if client.running():
        body = {"since": _iso_or_none(start), "until": _iso_or_none(end), "digests": selected}
        with client.stream("POST", "/v1/export", json=body) as response:
            manifest = _export_from_stream(response.iter_lines(), directory, file_format, progress)
    else:
        from history.client import Warehouse

        with Warehouse.open(settings) as warehouse:
            plan = plan_export(warehouse, since=start, until=end, digests=selected)
            writer = ExportWriter(directory, fmt=file_format, plan=plan, progress=progress)
            for stem, record in export_records(warehouse, plan):
                writer.add(stem, record)
            manifest = writer.finish(database=warehouse.database)
    for unknown in manifest.get("unknown_digests") or []:
        click.echo(f"warning: nothing is known about {unknown}; it is in the manifest, with no records", err=True)
    if manifest["total_records"] == 0:
        click.echo("warning: the export selected no records; check the range and the digests", err=True)
    for entry in manifest["files"]:
        say(f"{directory / entry['name']}: {entry['records']:,} records, {entry['bytes']:,} bytes")
    say(f"{directory / 'manifest.json'}: {manifest['total_records']:,} records, sha256 of every file")


def _iso_or_none(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@main.command("settings")
@click.option("--show-secrets", is_flag=True, help="Print secret values instead of masking them.")
@click.option("--markdown", is_flag=True, help="Print the settings table for the README (defaults, not values).")
@friendly_errors
def show_settings(show_secrets: bool, markdown: bool) -> None:
    """Print every setting, its effective value and what it does."""
    if markdown:
        click.echo(settings_markdown())
        return
    settings = _settings()
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = value.get_secret_value() if show_secrets else "********"
        env = "LINKED_ARTIFACTS_" + name.upper()
        click.echo(f"{env} = {value}\n    {field.description}")


def settings_markdown() -> str:
    lines = ["| environment variable | default | what it does |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default = "~/.cache/linked-artifacts" if name == "cache_dir" else "(computed)"
        else:
            default = "" if field.default is None else str(field.default)
        lines.append(f"| `LINKED_ARTIFACTS_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(lines)


@main.command()
@click.option("--check", is_flag=True, help="Fail if schemas/ differs from the models instead of rewriting it.")
@friendly_errors
def schemas(check: bool) -> None:
    """Regenerate the Avro schemas in schemas/ from the pydantic event models."""
    from linked_artifacts import avro_schema

    if check:
        stale = [
            name
            for name, model in avro_schema.SCHEMA_MODELS.items()
            if avro_schema.render(avro_schema.generate(model)) != avro_schema.schema_path(name).read_text()
        ]
        if stale:
            raise LinkedArtifactsError(f"schemas out of date: {', '.join(stale)}. Fix: run `linked-artifacts schemas`.")
        click.echo("schemas match the models.")
        return
    changed = avro_schema.write_all()
    click.echo("\n".join(f"wrote {p}" for p in changed) or "schemas already match the models.")


if __name__ == "__main__":
    main()
