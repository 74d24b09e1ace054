"""Audit export: records by time range or digests, files and a manifest that checks them."""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from history.client import Warehouse
from history.export import ExportError, export
from history.rows import insert_events

from .builders import Triage, at


@pytest.fixture
def triage(warehouse: Warehouse) -> Triage:
    history = Triage()
    batch = history.events
    insert_events(warehouse, batch, dedup_token=f"t:{uuid.uuid4()}")
    insert_events(warehouse, batch[:4], dedup_token=f"t:{uuid.uuid4()}")  # a redelivery: exported once
    return history


def _check_manifest(out: Path, manifest: dict[str, object]) -> None:
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for entry in manifest["files"]:  # type: ignore[attr-defined]
        data = (out / entry["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]


def test_export_of_a_family_by_any_of_its_digests(warehouse: Warehouse, triage: Triage, tmp_path: Path) -> None:
    manifest = export(warehouse, digests=[triage.arm64], fmt="jsonl", out_dir=tmp_path)
    _check_manifest(tmp_path, manifest)
    counts = {f["name"]: f["records"] for f in manifest["files"]}
    # provenance on the index plus the workflow run it names; 3 storage events; 2 deployments of I.
    assert counts == {"provenance.jsonl": 2, "storage.jsonl": 3, "deployments.jsonl": 2}
    storage = [json.loads(line) for line in (tmp_path / "storage.jsonl").read_text().splitlines()]
    assert [r["event_time"] for r in storage] == sorted(r["event_time"] for r in storage)
    assert storage[0]["digest"] == triage.index
    assert storage[0]["tags"] == ["1.0"]
    assert storage[-1]["previous_repository"] == "docker-local"


def test_export_by_time_range_as_csv(warehouse: Warehouse, triage: Triage, tmp_path: Path) -> None:
    manifest = export(warehouse, since=at(0), until=at(11), fmt="csv", out_dir=tmp_path)
    _check_manifest(tmp_path, manifest)
    with (tmp_path / "deployments.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["digest"], r["status"]) for r in rows] == [(triage.gone, "deployed"), (triage.index, "deployed")]
    assert json.loads(rows[1]["runtime_risks"]) == ["internet-exposed"]
    assert rows[0]["event_time"] == "2025-03-03T09:05:00Z"
    assert manifest["total_records"] == sum(f["records"] for f in manifest["files"])


def test_export_arguments_are_checked(warehouse: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(ExportError):
        export(warehouse, since=at(10), until=at(5), out_dir=tmp_path)
    with pytest.raises(ExportError):
        export(warehouse, fmt="xml", out_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ExportError):
        export(warehouse, since=at(0).replace(tzinfo=None), out_dir=tmp_path)
