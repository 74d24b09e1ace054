"""The enriched encoder splices cached record bytes: it must equal a from-scratch Avro encode by fastavro, byte
for byte."""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro
from hypothesis import given, settings

from linked_artifacts.avro import AvroCodec
from linked_artifacts.events import ArtifactEvent
from pipeline.enriched import StateEncoder
from pipeline.merge import merge
from pipeline.state import LinkedArtifactState, empty_state
from tests.unit.pipeline import factory as f
from tests.unit.pipeline.factory import run_system
from tests.unit.pipeline.strategies import scenarios


class _Registry:
    """Unit tier only: a schema id without a registry (the bytes after the frame are what is compared)."""

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return 7

    def schema_by_id(self, schema_id: int) -> Any:
        raise AssertionError("not used")


def _codec() -> AvroCodec[LinkedArtifactState]:
    return AvroCodec(_Registry(), subject="s", schema_name="linked_artifact", model=LinkedArtifactState)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(events=scenarios())
def test_spliced_encoding_equals_a_fresh_encode_for_every_reached_state(events: list[ArtifactEvent]) -> None:
    codec = _codec()
    encoder = StateEncoder(codec)
    for state in run_system(events).values():
        assert encoder.encode(state) == _fastavro_encode(codec, state)
        assert encoder.encode(state) == _fastavro_encode(codec, state)  # the second time from the cache


def test_unchanged_records_are_reused_across_versions_and_decode_back() -> None:
    codec = _codec()
    encoder = StateEncoder(codec)
    state = empty_state(f.INDEX)
    events = [
        f.storage("s", f.INDEX, 0, tags=["latest"], size=1782),
        f.provenance("p", f.INDEX, 0),
        f.deployment("d", f.INDEX, 1, risks=["internet-exposed"], asserted_by="defender-for-cloud"),
        f.alert("a", f.INDEX, 1, cvss=9.8, epss=0.4),
        f.alert("b", f.INDEX, 2, alert_key="grype:CVE-2026-0002", cvss=5.0),
    ]
    for event in events:
        state = merge(state, event)
        data = encoder.encode(state)
        assert data == _fastavro_encode(codec, state)
        assert codec.model.model_validate(_decode(codec, data)) == state
    # Five versions of a state of four records: each record encoded once, then spliced.
    assert encoder.misses == 5 and encoder.hits == 0 + 1 + 2 + 3 + 4


def test_cache_is_bounded() -> None:
    codec = _codec()
    encoder = StateEncoder(codec, cache_size=3)
    for n in range(10):
        state = merge(empty_state(f.INDEX), f.alert(f"a{n}", f.INDEX, n, alert_key=f"grype:CVE-2026-{n:04d}"))
        assert encoder.encode(state) == _fastavro_encode(codec, state)
    assert len(encoder._cache) <= 3 and len(encoder._previous) <= 3


def _fastavro_encode(codec: AvroCodec[LinkedArtifactState], state: LinkedArtifactState) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, codec.parsed, state.model_dump())
    return struct.pack(">bI", 0, codec.schema_id) + body.getvalue()


def _decode(codec: AvroCodec[LinkedArtifactState], data: bytes) -> dict[str, Any]:
    body = io.BytesIO(data[5:])
    decoded = fastavro.schemaless_reader(body, codec.parsed, codec.parsed)
    assert isinstance(decoded, dict)
    return decoded
