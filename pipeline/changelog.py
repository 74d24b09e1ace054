"""The linker table's values, as stored in its changelog topic and its in-memory store.

A digest's state is published on the enriched topic whenever it changes, so the worker has already encoded
it as the enriched topic's Avro record (Confluent frame, ``linked_artifact`` schema). That record is the
table value too: serialising the state a second time as JSON cost ~15% of the worker's CPU
(bench/worker_cpu.py). Other keys (deployment slots, repositories, runs) are never published; their value
is the state's JSON, which pydantic writes faster than Avro for a state encoded once.

The two are told apart by their first byte: a Confluent frame starts with the magic byte 0, JSON with
``{``. A changelog written before this format held JSON only, and still reads.
"""

from __future__ import annotations

from linked_artifacts.avro import MAGIC, AvroCodec
from pipeline.state import LinkedArtifactState

_AVRO_FRAME = bytes([MAGIC])


def table_value(state: LinkedArtifactState, *, enriched: bytes | None) -> bytes:
    """The bytes to store for ``state``: its enriched record when one was encoded, else its JSON."""
    return enriched if enriched is not None else state.model_dump_json().encode()


def read_state(data: bytes, codec: AvroCodec[LinkedArtifactState]) -> LinkedArtifactState:
    """The state a table value holds, in either format (``codec``: the enriched topic's)."""
    if data[:1] == _AVRO_FRAME:
        return codec.decode(data)
    return LinkedArtifactState.model_validate_json(data)
