"""Audit export: provenance, storage and deployment records from the history, with a manifest.

An export selects history events (every accepted event, not only the current state) by a time range
of event time, ``since <= event_time < until``, and/or by digests. A digest brings its whole family
(image index and platform manifests) and the workflow runs its builds name. It writes, in ``out_dir``:

- ``provenance.jsonl`` (build events: provenance attestations and workflow runs),
- ``storage.jsonl``, ``deployments.jsonl``,
- ``manifest.json``: what was asked, and per file its record count, size and sha256.

(or ``.csv`` files with one column per field; lists and maps are JSON in their cell).

Each record is one event: the envelope (event_id, key, digest, source, event_time, ingest_time,
delivery_id) followed by the fields of its body, in the order of the canonical models in
``linked_artifacts.events``. Records are in event-time order; a redelivered event appears once.
Rows are streamed from ClickHouse block by block, so an export's memory does not grow with its size.

The work is split so that the files can be written away from ClickHouse: :func:`plan_export` checks the
request and resolves digests to history keys, :func:`export_records` streams the records (this is what
the query API's ``POST /v1/export`` sends), and :class:`ExportWriter` writes the files and the manifest
(this is what ``linked-artifacts export`` runs, whether the records come from the API or straight from
ClickHouse). :func:`export` does all three in one process.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal, cast

from pydantic import BaseModel

from history.client import Warehouse
from linked_artifacts.digests import normalise_digest
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import BuildBody, DeploymentBody, StorageBody

ExportFormat = Literal["jsonl", "csv"]
MANIFEST_FORMAT: Final = "linked-artifacts-audit/1"
MAX_DIGESTS: Final = 10_000
# Progress is reported every this many records of a file: often enough for a terminal on a large export,
# rare enough to cost nothing.
PROGRESS_EVERY: Final = 5_000
FILE_STEMS: Final = ("provenance", "storage", "deployments")

# Told (file stem, records written so far, whether the file is complete).
Progress = Callable[[str, int, bool], None]

_ENVELOPE: Final = ("event_id", "key", "digest", "source", "event_time", "ingest_time", "delivery_id")
_FILES: Final[tuple[tuple[str, str, type[BaseModel]], ...]] = (
    ("provenance", "build", BuildBody),
    ("storage", "storage", StorageBody),
    ("deployments", "deployment", DeploymentBody),
)


class ExportError(LinkedArtifactsError):
    """The export request is wrong (bad range, digest, format or output directory); the message names the fix."""

    code = "invalid_export"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, field=field, status=400)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _keys_for(warehouse: Warehouse, digests: Sequence[str]) -> list[str]:
    """The digests, their families, and the workflow-run keys their builds name."""
    linked = warehouse.query(
        "SELECT DISTINCT linked_digest FROM links_current WHERE digest IN {ds:Array(String)} "
        "UNION DISTINCT SELECT DISTINCT l2.linked_digest FROM links_current AS l1 "
        "INNER JOIN links_current AS l2 ON l2.digest = l1.linked_digest "
        "WHERE l1.digest IN {ds:Array(String)} AND l1.relation = 'index' AND l2.relation = 'platform'",
        {"ds": list(digests)},
    ).result_rows
    family = sorted({*digests, *(str(r[0]) for r in linked)})
    runs = warehouse.query(
        "SELECT DISTINCT concat('run:', build_repository, '/', toString(build_run_id)) FROM events "
        "WHERE key IN {ds:Array(String)} AND kind = 'build' AND build_run_id != 0 AND build_repository != ''",
        {"ds": family},
    ).result_rows
    return sorted({*family, *(str(r[0]) for r in runs)})


def _records(
    warehouse: Warehouse,
    kind: str,
    *,
    keys: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> Iterator[dict[str, Any]]:
    where = ["kind = {kind:String}"]
    parameters: dict[str, Any] = {"kind": kind}
    if keys is not None:
        where.append("key IN {keys:Array(String)}")
        parameters["keys"] = list(keys)
    if since is not None:
        where.append("event_time >= {since:DateTime64(6, 'UTC')}")
        parameters["since"] = since
    if until is not None:
        where.append("event_time < {until:DateTime64(6, 'UTC')}")
        parameters["until"] = until
    sql = (
        "SELECT event_id, key, digest, source, event_time, ingest_time, delivery_id, body FROM events "
        f"WHERE {' AND '.join(where)} ORDER BY event_time, event_id LIMIT 1 BY event_id"
    )
    with warehouse.stream(sql, parameters) as rows:
        for event_id, key, digest, source, event_time, ingest_time, delivery_id, body in rows:
            record: dict[str, Any] = {
                "event_id": event_id,
                "key": key,
                "digest": digest or None,
                "source": source,
                "event_time": _iso(event_time),
                "ingest_time": _iso(ingest_time),
                "delivery_id": delivery_id,
            }
            record.update(json.loads(body) if body else {})
            yield record


class _HashingWriter(io.RawIOBase):
    """Counts and hashes every byte on its way to the file, so the manifest needs no second read."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.target.write(chunk)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return len(chunk)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _open_file(path: Path, fmt: ExportFormat, model: type[BaseModel]) -> _FileWriter:
    try:
        raw = path.open("wb")
    except OSError as ex:
        raise ExportError(
            f"cannot write {path}: {ex.strerror}. Fix: choose another --out directory", field="out_dir"
        ) from ex
    return _FileWriter(raw, fmt, [*_ENVELOPE, *model.model_fields], name=path.name)


class _FileWriter:
    """One export file: rows in, counted and hashed on the way out."""

    def __init__(self, raw: IO[bytes], fmt: ExportFormat, columns: list[str], *, name: str) -> None:
        self.name = name
        self.records = 0
        self._raw = raw
        self._columns = columns
        self._hashing = _HashingWriter(raw)
        self._text = io.TextIOWrapper(cast(Any, self._hashing), encoding="utf-8", newline="")  # a raw binary sink
        self._csv = csv.writer(self._text, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(columns)

    def add(self, record: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow([_cell(record.get(c)) for c in self._columns])
        else:
            self._text.write(json.dumps({c: record.get(c) for c in self._columns}, ensure_ascii=False) + "\n")
        self.records += 1

    def close(self) -> dict[str, Any]:
        self._text.flush()
        self._text.detach()
        self._raw.close()
        return {
            "name": self.name,
            "records": self.records,
            "bytes": self._hashing.size,
            "sha256": self._hashing.sha256.hexdigest(),
        }


# --- the request -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What an export selects: a checked range and/or normalised digests, resolved to history keys.

    ``keys`` is None for "every key" (a time range alone); ``unknown_digests`` are asked-for digests the
    history has no event for (exported as nothing, reported so that a typo does not pass for a clean audit).
    """

    since: datetime | None
    until: datetime | None
    digests: tuple[str, ...] | None
    keys: tuple[str, ...] | None
    unknown_digests: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "digests": None if self.digests is None else list(self.digests),
            "keys": None if self.keys is None else list(self.keys),
            "unknown_digests": list(self.unknown_digests),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportPlan:
        def when(value: Any) -> datetime | None:
            return None if value is None else datetime.fromisoformat(str(value).replace("Z", "+00:00"))

        def strings(value: Any) -> tuple[str, ...] | None:
            return None if value is None else tuple(str(v) for v in value)

        return cls(
            since=when(data.get("since")),
            until=when(data.get("until")),
            digests=strings(data.get("digests")),
            keys=strings(data.get("keys")),
            unknown_digests=strings(data.get("unknown_digests")) or (),
        )


def check_range(since: datetime | None, until: datetime | None) -> None:
    """Both ends carry a time zone and the range is not empty."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ExportError(f"{name} must carry a time zone (UTC)", field=name)
    if since is not None and until is not None and since >= until:
        raise ExportError(
            f"the range is empty: since ({_iso(since)}) must be before until ({_iso(until)})", field="since"
        )


def normalise_digests(digests: Sequence[str]) -> tuple[str, ...]:
    """Sorted, distinct, normalised; a value that is no digest is refused with what a digest looks like."""
    if len(digests) > MAX_DIGESTS:
        raise ExportError(f"at most {MAX_DIGESTS} digests per export; split the list", field="digests")
    found = set()
    for value in digests:
        try:
            found.add(normalise_digest(value, field="digests"))
        except LinkedArtifactsError as ex:
            raise ExportError(
                f"{value!r} is not a digest: give sha256:<64 hex> (or the bare hex, or an image reference "
                "ending in @sha256:<hex>)",
                field="digests",
            ) from ex
    return tuple(sorted(found))


def plan_export(
    warehouse: Warehouse,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    digests: Sequence[str] | None = None,
) -> ExportPlan:
    """Check the request and resolve digests to the history keys to export."""
    check_range(since, until)
    if digests is None:
        return ExportPlan(since=since, until=until, digests=None, keys=None)
    normalised = normalise_digests(digests)
    if not normalised:
        return ExportPlan(since=since, until=until, digests=(), keys=())
    keys = tuple(_keys_for(warehouse, normalised))
    known = {
        str(row[0])
        for row in warehouse.query(
            "SELECT DISTINCT key FROM events WHERE key IN {keys:Array(String)}", {"keys": list(keys)}
        ).result_rows
    }
    linked = set(keys) - set(normalised)  # a digest known only through its family is known
    unknown = tuple(d for d in normalised if d not in known and not (linked & known))
    return ExportPlan(since=since, until=until, digests=normalised, keys=keys, unknown_digests=unknown)


def export_records(warehouse: Warehouse, plan: ExportPlan) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record of the export as (file stem, record), file by file in FILE_STEMS order."""
    if plan.keys == ():
        return
    for stem, kind, _ in _FILES:
        for record in _records(warehouse, kind, keys=plan.keys, since=plan.since, until=plan.until):
            yield stem, record


# --- the files ---------------------------------------------------------------------------------------------------


def prepare_out_dir(out_dir: Path | str, *, overwrite: bool = False) -> Path:
    """The output directory, created if needed and checked writable, before anything is read."""
    directory = Path(out_dir)
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} is a file, not a directory. Fix: give a directory to --out", field="out_dir")
    if (directory / "manifest.json").exists() and not overwrite:
        raise ExportError(
            f"{directory} already holds an export (manifest.json). Fix: choose a new --out directory, "
            "or pass --overwrite to replace it",
            field="out_dir",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as ex:
        raise ExportError(
            f"cannot write to {directory}: {ex.strerror}. Fix: choose a directory you can write with --out",
            field="out_dir",
        ) from ex
    return directory


class ExportWriter:
    """Writes an export's files and then its manifest into a prepared directory.

    Records must arrive file by file, in FILE_STEMS order (as :func:`export_records` yields them); every
    file is written, empty ones included. The manifest is written last, by :meth:`finish`, through a
    rename: a directory without manifest.json is an export that did not complete.
    """

    def __init__(
        self, directory: Path, *, fmt: ExportFormat, plan: ExportPlan, progress: Progress | None = None
    ) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ExportError(f"the format must be jsonl or csv, not {fmt!r}", field="fmt")
        self.directory = directory
        self.fmt: ExportFormat = fmt
        self.plan = plan
        self._progress = progress
        self._done: list[dict[str, Any]] = []
        self._pending = list(_FILES)
        self._current: _FileWriter | None = None
        self._current_stem = ""

    def add(self, stem: str, record: dict[str, Any]) -> None:
        while self._current is None or self._current_stem != stem:
            self._next_file(stem)
        self._current.add(record)
        if self._progress is not None and self._current.records % PROGRESS_EVERY == 0:
            self._progress(stem, self._current.records, False)

    def _next_file(self, wanted: str) -> None:
        if not self._pending:
            raise ExportError(f"records of {wanted!r} arrived out of order", field="records")
        self._close_current()
        stem, _, model = self._pending.pop(0)
        self._current = _open_file(self.directory / f"{stem}.{self.fmt}", self.fmt, model)
        self._current_stem = stem

    def _close_current(self) -> None:
        if self._current is None:
            return
        entry = self._current.close()
        self._done.append(entry)
        if self._progress is not None:
            self._progress(self._current_stem, entry["records"], True)
        self._current = None

    def finish(self, *, database: str) -> dict[str, Any]:
        """Close every file (writing the ones no record reached) and write manifest.json; return it."""
        while self._pending:
            self._next_file(self._pending[0][0])
        self._close_current()
        manifest = {
            "format": MANIFEST_FORMAT,
            "generated_at": _iso(datetime.now(UTC)),
            "database": database,
            **self.plan.as_dict(),
            "file_format": self.fmt,
            "files": self._done,
            "total_records": sum(f["records"] for f in self._done),
        }
        manifest_path = self.directory / "manifest.json"
        tmp = manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, manifest_path)
        return manifest


def export(
    warehouse: Warehouse,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    digests: Sequence[str] | None = None,
    fmt: ExportFormat = "jsonl",
    out_dir: Path | str,
    overwrite: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the audit files and ``manifest.json`` into ``out_dir``; return the manifest."""
    if fmt not in ("jsonl", "csv"):
        raise ExportError(f"the format must be jsonl or csv, not {fmt!r}", field="fmt")
    plan = plan_export(warehouse, since=since, until=until, digests=digests)
    writer = ExportWriter(prepare_out_dir(out_dir, overwrite=overwrite), fmt=fmt, plan=plan, progress=progress)
    for stem, record in export_records(warehouse, plan):
        writer.add(stem, record)
    return writer.finish(database=warehouse.database)
