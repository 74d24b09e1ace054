"""AvroCodec reads a record with our own schema only when the writer's schema differs from it: fastavro
compares an equal reader schema on every record otherwise. A record written with our schema is read by the
compiled reader, one written with an older schema by fastavro; corrupt data is a ``DecodeError`` either way
(the registry round trip is covered in tests/integration/test_stack_smoke.py)."""

from __future__ import annotations

import copy
import io
from typing import Any, cast

import fastavro
import pytest

from linked_artifacts import avro_schema
from linked_artifacts.avro import _HEADER, AvroCodec, DecodeError, SchemaRegistry
from linked_artifacts.events import ArtifactEvent
from tests.unit.pipeline.factory import alert, deployment


class _Registry:
    """Unit tier only: the registry's two calls; ids 1 (our schema) and 2 (an older one) are known."""

    def __init__(self) -> None:
        ours = avro_schema.load("artifact_event")
        older = copy.deepcopy(ours)
        older["fields"] = [f for f in older["fields"] if f["name"] != "link"]  # before links existed
        self.schemas = {1: fastavro.parse_schema(ours), 2: fastavro.parse_schema(older)}

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return 1

    def schema_by_id(self, schema_id: int) -> Any:
        return self.schemas[schema_id]


def test_the_reader_schema_is_used_only_for_a_different_writer_schema() -> None:
    registry = _Registry()
    codec = AvroCodec(cast(SchemaRegistry, registry), subject="t", schema_name="artifact_event", model=ArtifactEvent)
    assert codec._reader_for(1, registry.schemas[1]) is None  # equal, though not the same object
    assert codec._reader_for(2, registry.schemas[2]) is codec.parsed
    assert codec._readers == {1: None, 2: codec.parsed}  # decided once per schema id


def _codec(registry: _Registry) -> AvroCodec[ArtifactEvent]:
    return AvroCodec(cast(SchemaRegistry, registry), subject="t", schema_name="artifact_event", model=ArtifactEvent)


EVENTS = [
    alert("e1", "sha256:" + "a" * 64, 1, cvss=9.8, epss=0.2),
    deployment("e2", "sha256:" + "b" * 64, 2, risks=["internet-exposed"], asserted_by="defender"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_records_of_our_schema_and_of_an_older_one_decode_to_the_event(event: ArtifactEvent) -> None:
    registry = _Registry()
    codec = _codec(registry)
    data = codec.encode(event)
    assert codec._read is not None
    assert codec.decode(data) == event  # schema id 1: the compiled reader
    fastavro_value = fastavro.schemaless_reader(io.BytesIO(data[_HEADER.size :]), registry.schemas[1], None)
    assert codec._read(data, _HEADER.size) == fastavro_value
    older = io.BytesIO()
    older.write(_HEADER.pack(0, 2))
    fastavro.schemaless_writer(older, registry.schemas[2], event.model_dump())
    assert codec.decode(older.getvalue()) == event  # fastavro resolves it: link takes its default


@pytest.mark.parametrize("schema_id", [1, 2])
def test_truncated_records_are_decode_errors(schema_id: int) -> None:
    registry = _Registry()
    codec = _codec(registry)
    written = io.BytesIO()
    fastavro.schemaless_writer(written, registry.schemas[schema_id], EVENTS[0].model_dump())
    body = written.getvalue()
    for cut in range(0, len(body), 7):
        with pytest.raises(DecodeError, match=f"does not match schema id {schema_id}"):
            codec.decode(_HEADER.pack(0, schema_id) + body[:cut])
