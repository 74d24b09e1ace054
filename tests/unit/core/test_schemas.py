"""Schemas are contracts: generated from the models, and every version reads every earlier one."""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import pytest
from fastavro.utils import generate_many

from linked_artifacts import avro_schema

NAMES = sorted(avro_schema.SCHEMA_MODELS)


@pytest.mark.parametrize("name", NAMES)
def test_checked_in_schema_matches_the_pydantic_model(name: str) -> None:
    generated = avro_schema.render(avro_schema.generate(avro_schema.SCHEMA_MODELS[name]))
    assert avro_schema.schema_path(name).read_text() == generated, "run `linked-artifacts schemas`"


@pytest.mark.parametrize("name", NAMES)
def test_every_schema_has_a_released_first_version(name: str) -> None:
    assert avro_schema.history(name), f"copy schemas/{name}.avsc to schemas/history/{name}/v001.avsc"


def _versions(name: str) -> list[Path]:
    return [*avro_schema.history(name), avro_schema.schema_path(name)]


@pytest.mark.parametrize("name", NAMES)
def test_each_version_reads_data_written_with_every_earlier_version(name: str) -> None:
    versions = _versions(name)
    for newer_index, newer_path in enumerate(versions):
        reader = fastavro.parse_schema(json.loads(newer_path.read_text()))
        for older_path in versions[: newer_index + 1]:
            writer = fastavro.parse_schema(json.loads(older_path.read_text()))
            for record in generate_many(writer, 25):
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, writer, record)
                buf.seek(0)
                fastavro.schemaless_reader(buf, writer, reader)


@pytest.mark.parametrize("name", NAMES)
def test_released_versions_are_never_edited(name: str) -> None:
    # A released version is immutable: evolve by adding vNNN+1, never by rewriting history.
    for path in avro_schema.history(name):
        schema = json.loads(path.read_text())
        assert schema["type"] == "record" and schema["name"], path
