"""The compiled Avro reader gives fastavro's values, for our schemas and for every value shape they allow;
truncated or corrupt data raises instead of giving a value, and a schema outside its subset is refused (the
codec then keeps fastavro)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linked_artifacts import avro_schema
from linked_artifacts.avro import _compiled_reader
from linked_artifacts.avro_codegen import UnsupportedSchema
from linked_artifacts.avro_reader import TruncatedData, compile_reader
from linked_artifacts.events import ArtifactEvent
from tests.unit.core.test_avro_writer import DEAD, EDGES, EVENT, STATE, _edges
from tests.unit.pipeline.factory import run_system
from tests.unit.pipeline.strategies import histories, scenarios


def _write(schema: Any, value: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), value)
    return body.getvalue()


def _fastavro(schema: Any, data: bytes) -> Any:
    return fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(schema), None)


READ_EVENT = compile_reader(EVENT)
READ_STATE = compile_reader(STATE)


@settings(max_examples=60, deadline=None)
@given(events=histories(max_size=20))
def test_events_are_read_as_fastavro_reads_them(events: list[ArtifactEvent]) -> None:
    for event in events:
        data = _write(EVENT, event.model_dump())
        assert READ_EVENT(data) == _fastavro(EVENT, data)
        assert ArtifactEvent.model_validate(READ_EVENT(data)) == event
        assert READ_EVENT(b"\0\0\0\0\1" + data, 5) == _fastavro(EVENT, data)  # from an offset: past a frame header


@settings(max_examples=40, deadline=None)
@given(events=scenarios())
def test_linked_states_are_read_as_fastavro_reads_them(events: list[ArtifactEvent]) -> None:
    for state in run_system(events).values():
        data = _write(STATE, state.model_dump())
        assert READ_STATE(data) == _fastavro(STATE, data)


def test_a_dead_letter_with_binary_body() -> None:
    letter = {
        "dead_letter_id": "x:0:1", "stage": "worker", "endpoint": "t", "reason": "bad", "error_code": "invalid",
        "body": bytes(range(256)) * 3, "received_at": datetime(2026, 12, 6, tzinfo=UTC),
    }
    data = _write(DEAD, letter)
    assert compile_reader(DEAD)(data) == _fastavro(DEAD, data)


@settings(max_examples=300, deadline=None)
@given(value=_edges())
def test_every_supported_shape_is_read_as_fastavro_reads_it(value: dict[str, Any]) -> None:
    # Longs up to 10-byte varints, strings past one-byte lengths, unions with null first or last, maps,
    # nested, repeated and self-referring records, and times before the epoch.
    data = _write(EDGES, value)
    try:
        expected = _fastavro(EDGES, data)
    except OverflowError:  # a time past year 9999 (written from an int): no datetime holds it
        with pytest.raises(OverflowError):
            compile_reader(EDGES)(data)
        return
    assert compile_reader(EDGES)(data) == expected


def test_arrays_written_in_blocks_with_byte_sizes_are_read() -> None:
    # A writer may split an array into blocks, and give a block's size in bytes with a negative count.
    schema = {"type": "array", "items": "long"}
    data = bytes([0x03, 0x08, 0x02, 0x04, 0x04, 0x04, 0x06, 0x00])  # -2 items in 4 bytes, then 2 items, then 0
    assert compile_reader(schema)(data) == _fastavro(schema, data) == [1, 2, 2, 3]


def test_many_distinct_times_are_read_past_the_cache_of_built_times() -> None:
    schema = {"type": "array", "items": {"type": "long", "logicalType": "timestamp-micros"}}
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=n, microseconds=n) for n in range(10_000)]
    data = _write(schema, times)
    assert compile_reader(schema)(data) == times


@settings(max_examples=40, deadline=None)
@given(events=histories(max_size=3), cut=st.integers(min_value=0))
def test_truncated_data_raises_instead_of_giving_a_value(events: list[ArtifactEvent], cut: int) -> None:
    data = _write(EVENT, events[0].model_dump())
    truncated = data[: cut % len(data)]
    with pytest.raises(Exception):  # noqa: B017 - fastavro, too, raises several types
        _fastavro(EVENT, truncated)
    with pytest.raises((ValueError, IndexError)):
        READ_EVENT(truncated)


@pytest.mark.parametrize("kind", ["double", "float"])
def test_a_number_cut_short_is_truncated_data(kind: str) -> None:
    # struct's own error is not a ValueError: a decoder catching ValueError would have let it through.
    schema = {"type": "record", "name": "Score", "fields": [{"name": "cvss", "type": kind}]}
    data = _write(schema, {"cvss": 7.5})
    with pytest.raises(TruncatedData, match="ends inside a value"):
        compile_reader(schema)(data[:-1])


def test_a_corrupt_union_branch_raises() -> None:
    with pytest.raises(ValueError, match="union branch 5 of 2"):
        compile_reader(["null", "string"])(bytes([10]))


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "enum", "name": "E", "symbols": ["a", "b"]},
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "int", "logicalType": "date"},
        {"type": "record", "name": "R", "fields": [{"name": "x", "type": "Unknown"}]},
    ],
)
def test_a_schema_outside_the_subset_is_refused_and_the_codec_keeps_fastavro(schema: Any) -> None:
    with pytest.raises(UnsupportedSchema):
        compile_reader(schema)
    assert _compiled_reader(schema) is None


def test_the_codecs_of_our_schemas_are_compiled() -> None:
    for name in avro_schema.SCHEMA_MODELS:
        assert _compiled_reader(avro_schema.load(name)) is not None, name
