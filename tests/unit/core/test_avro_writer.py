"""The compiled Avro writer writes fastavro's bytes, for our three schemas and for every value shape they
allow; a schema outside its subset is refused, and the codec then keeps fastavro."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linked_artifacts import avro_schema
from linked_artifacts.avro import _compiled
from linked_artifacts.avro_codegen import UnsupportedSchema
from linked_artifacts.avro_writer import compile_writer
from linked_artifacts.events import ArtifactEvent, DeadLetter
from tests.unit.pipeline.factory import run_system
from tests.unit.pipeline.strategies import histories, scenarios


def _fastavro(schema: Any, value: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), value)
    return body.getvalue()


def _compiled_bytes(schema: Any, value: Any) -> bytes:
    out = bytearray()
    compile_writer(schema)(out, value)
    return bytes(out)


EVENT = avro_schema.load("artifact_event")
STATE = avro_schema.load("linked_artifact")
DEAD = avro_schema.load("dead_letter")


@settings(max_examples=60, deadline=None)
@given(events=histories(max_size=20))
def test_events_are_written_as_fastavro_writes_them(events: list[ArtifactEvent]) -> None:
    for event in events:
        expected = _fastavro(EVENT, event.model_dump())
        assert _compiled_bytes(EVENT, event) == expected  # read from the model's attributes
        assert _compiled_bytes(EVENT, event.model_dump()) == expected  # or from its dict


@settings(max_examples=40, deadline=None)
@given(events=scenarios())
def test_linked_states_are_written_as_fastavro_writes_them(events: list[ArtifactEvent]) -> None:
    for state in run_system(events).values():
        expected = _fastavro(STATE, state.model_dump())
        assert _compiled_bytes(STATE, state) == expected
        assert _compiled_bytes(STATE, state.model_dump()) == expected


def test_a_dead_letter_with_binary_body_and_no_optional_fields() -> None:
    letter = DeadLetter(
        dead_letter_id="x:0:1", stage="worker", endpoint="t", reason="bad", error_code="invalid",
        body=bytes(range(256)) * 3, received_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    assert _compiled_bytes(DEAD, letter) == _fastavro(DEAD, letter.model_dump())


EDGES: dict[str, Any] = {
    "type": "record",
    "name": "Edge",
    "namespace": "dev.test",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "i", "type": "int"},
        {"name": "s", "type": "string"},
        {"name": "b", "type": "bytes"},
        {"name": "flag", "type": "boolean"},
        {"name": "d", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "null_first", "type": ["null", "string"]},
        {"name": "null_last", "type": ["string", "null"]},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "labels", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "v", "type": "long"}]}},
        {"name": "inners", "type": {"type": "array", "items": "Inner"}},
        {"name": "maybe_inner", "type": ["null", "dev.test.Inner"]},
        {"name": "next", "type": ["null", "Edge"]},  # a record that refers to itself
        {"name": "defaulted", "type": "string", "default": "dflt"},
    ],
}

_times = st.one_of(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),  # naive: from the naive epoch
    st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone(timedelta(hours=-5)))
    ),
    st.integers(min_value=-(2**62), max_value=2**62),
)


@st.composite
def _edges(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
    value: dict[str, Any] = {
        "n": draw(longs),
        "i": draw(st.integers(min_value=-(2**31), max_value=2**31 - 1)),
        "s": draw(st.text(max_size=200)),  # lengths past 63 bytes take a two-byte varint
        "b": draw(st.binary(max_size=300)),
        "flag": draw(st.booleans()),
        "d": draw(st.one_of(st.floats(allow_nan=False), st.integers(min_value=-(2**40), max_value=2**40))),
        "f": draw(st.floats(width=32, allow_nan=False)),
        "null_first": draw(st.none() | st.text(max_size=5)),
        "null_last": draw(st.none() | st.text(max_size=5)),
        "at": draw(_times),
        "tags": draw(st.lists(st.text(max_size=8), max_size=4)),
        "labels": draw(st.dictionaries(st.text(max_size=5), st.none() | longs, max_size=4)),
        "inner": {"v": draw(longs)},
        "inners": [{"v": v} for v in draw(st.lists(longs, max_size=3))],
        "maybe_inner": draw(st.none() | longs.map(lambda v: {"v": v})),
        "next": draw(_edges(depth + 1)) if depth < 2 and draw(st.booleans()) else None,
    }
    if draw(st.booleans()):
        value["defaulted"] = draw(st.text(max_size=5))  # else the field's default is written
    return value


@settings(max_examples=200, deadline=None)
@given(value=_edges())
def test_every_supported_shape_is_written_as_fastavro_writes_it(value: dict[str, Any]) -> None:
    assert _compiled_bytes(EDGES, value) == _fastavro(EDGES, value)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**70])
def test_a_long_past_64_bits_is_refused_as_by_fastavro(value: int) -> None:
    with pytest.raises(OverflowError):
        _fastavro("long", value)
    with pytest.raises(OverflowError):
        _compiled_bytes("long", value)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "enum", "name": "E", "symbols": ["a", "b"]},
        {"type": "fixed", "name": "F", "size": 4},
        ["null", "string", "long"],
        ["string", "long"],
        {"type": "int", "logicalType": "date"},
        {"type": "record", "name": "R", "fields": [{"name": "x", "type": "Unknown"}]},
    ],
)
def test_a_schema_outside_the_subset_is_refused_and_the_codec_keeps_fastavro(schema: Any) -> None:
    with pytest.raises(UnsupportedSchema):
        compile_writer(schema)
    assert _compiled(schema) is None


def test_the_codecs_of_our_schemas_are_compiled() -> None:
    for name in avro_schema.SCHEMA_MODELS:
        assert _compiled(avro_schema.load(name)) is not None, name


def test_a_field_named_like_a_python_keyword_is_read_from_attributes_and_dicts() -> None:
    from types import SimpleNamespace

    fields = [{"name": "from", "type": "long"}, {"name": "n", "type": "long"}]
    schema = {"type": "record", "name": "K", "fields": fields}
    value = {"from": 70, "n": True}  # a bool is an int to Avro, as to fastavro
    expected = _fastavro(schema, value)
    assert _compiled_bytes(schema, value) == _compiled_bytes(schema, SimpleNamespace(**value)) == expected
