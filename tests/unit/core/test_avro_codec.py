"""AvroCodec reads a record with our own schema only when the writer's schema differs from it: fastavro
compares an equal reader schema on every record otherwise (the registry round trip is covered in
tests/integration/test_stack_smoke.py)."""

from __future__ import annotations

import copy
from typing import Any, cast

import fastavro

from linked_artifacts import avro_schema
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent


class _Registry:
    """Unit tier only: the registry's two calls; ids 1 (our schema) and 2 (an older one) are known."""

    def __init__(self) -> None:
        ours = avro_schema.load("artifact_event")
        older = copy.deepcopy(ours)
        older["fields"] = [f for f in older["fields"] if f["name"] != "delivery_id"]
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
