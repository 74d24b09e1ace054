"""The linker table's values: a digest's enriched Avro record or another key's JSON, both read back whole."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings

from linked_artifacts.avro import AvroCodec
from linked_artifacts.events import ArtifactEvent
from pipeline.changelog import read_state, table_value
from pipeline.enriched import StateEncoder
from pipeline.state import LinkedArtifactState
from tests.unit.pipeline import factory as f
from tests.unit.pipeline.factory import run_system
from tests.unit.pipeline.strategies import scenarios


class _Registry:
    """Unit tier only: one schema under one id, as the registry would hand it back."""

    def __init__(self) -> None:
        self.schema: Any = None

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return 7

    def schema_by_id(self, schema_id: int) -> Any:
        assert schema_id == 7
        return self.schema


def _codec() -> AvroCodec[LinkedArtifactState]:
    registry = _Registry()
    codec = AvroCodec(registry, subject="s", schema_name="linked_artifact", model=LinkedArtifactState)  # type: ignore[arg-type]
    registry.schema = codec.parsed
    return codec


@settings(max_examples=60, deadline=None)
@given(events=scenarios())
def test_every_reached_state_reads_back_equal_from_either_format(events: list[ArtifactEvent]) -> None:
    codec = _codec()
    encoder = StateEncoder(codec)
    for state in run_system(events).values():
        avro = table_value(state, enriched=encoder.encode(state))
        as_json = table_value(state, enriched=None)
        assert avro[:1] == b"\x00" and as_json[:1] == b"{"
        assert read_state(avro, codec) == state
        assert read_state(as_json, codec) == state


def test_a_digest_value_is_the_enriched_record_itself() -> None:
    codec = _codec()
    state = LinkedArtifactState(key=f.INDEX)
    record = StateEncoder(codec).encode(state)
    assert table_value(state, enriched=record) is record
