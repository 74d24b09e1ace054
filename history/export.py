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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
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

_ENVELOPE: Final = ("event_id", "key", "digest", "source", "event_time", "ingest_time", "delivery_id")
_FILES: Final[tuple[tuple[str, str, type[BaseModel]], ...]] = (
    ("provenance", "build", BuildBody),
    ("storage", "storage", StorageBody),
    ("deployments", "deployment", DeploymentBody),
)


class ExportError(LinkedArtifactsError):
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


def _write(records: Iterator[dict[str, Any]], path: Path, fmt: ExportFormat, model: type[BaseModel]) -> dict[str, Any]:
    columns = [*_ENVELOPE, *model.model_fields]
    count = 0
    with path.open("wb") as raw:
        hashing = _HashingWriter(raw)
        text = io.TextIOWrapper(cast(Any, hashing), encoding="utf-8", newline="")  # a raw binary sink
        writer = csv.writer(text, lineterminator="\n") if fmt == "csv" else None
        if writer is not None:
            writer.writerow(columns)
        for record in records:
            if writer is not None:
                writer.writerow([_cell(record.get(c)) for c in columns])
            else:
                text.write(json.dumps({c: record.get(c) for c in columns}, ensure_ascii=False) + "\n")
            count += 1
        text.flush()
        text.detach()
    return {"name": path.name, "records": count, "bytes": hashing.size, "sha256": hashing.sha256.hexdigest()}


def export(
    warehouse: Warehouse,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    digests: Sequence[str] | None = None,
    fmt: ExportFormat = "jsonl",
    out_dir: Path | str,
) -> dict[str, Any]:
    """Write the audit files and ``manifest.json`` into ``out_dir``; return the manifest."""
    if fmt not in ("jsonl", "csv"):
        raise ExportError(f"fmt must be jsonl or csv, not {fmt!r}", field="fmt")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ExportError(f"{name} must carry a time zone (UTC)", field=name)
    if since is not None and until is not None and since >= until:
        raise ExportError("since must be before until", field="since")
    normalised: list[str] | None = None
    if digests is not None:
        if len(digests) > MAX_DIGESTS:
            raise ExportError(f"at most {MAX_DIGESTS} digests per export", field="digests")
        normalised = sorted({normalise_digest(d, field="digests") for d in digests})
    keys = _keys_for(warehouse, normalised) if normalised else ([] if normalised is not None else None)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for stem, kind, model in _FILES:
        path = directory / f"{stem}.{fmt}"
        records = _records(warehouse, kind, keys=keys, since=since, until=until) if keys != [] else iter(())
        files.append(_write(records, path, fmt, model))
    manifest = {
        "format": MANIFEST_FORMAT,
        "generated_at": _iso(datetime.now(UTC)),
        "database": warehouse.database,
        "since": _iso(since),
        "until": _iso(until),
        "digests": normalised,
        "keys": keys,
        "file_format": fmt,
        "files": files,
        "total_records": sum(f["records"] for f in files),
    }
    manifest_path = directory / "manifest.json"
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, manifest_path)
    return manifest
