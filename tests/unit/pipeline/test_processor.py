"""The batch processor: coalescing per key, poison records, and what it asks the agent to write."""

from __future__ import annotations

from typing import Any, cast

import fastavro

from linked_artifacts import avro_schema
from linked_artifacts.avro import AvroCodec, SchemaRegistry
from linked_artifacts.events import ArtifactEvent
from pipeline.processor import FROZEN_CODE, Processor, Record, exchange
from pipeline.state import LinkedArtifactState
from tests.unit.pipeline.factory import AMD64, INDEX, OTHER, alert, deployment, link, storage


class _OneSchemaRegistry:
    """Unit tier only: the registry's two calls, answered from schemas/ (integration tests use Apicurio)."""

    def __init__(self) -> None:
        self.schema = avro_schema.load("artifact_event")

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        return 1

    def schema_by_id(self, schema_id: int) -> Any:
        return fastavro.parse_schema(self.schema)


def _processor() -> tuple[Processor, AvroCodec[ArtifactEvent]]:
    codec = AvroCodec(
        cast(SchemaRegistry, _OneSchemaRegistry()),
        subject="t",
        schema_name="artifact_event",
        model=ArtifactEvent,
    )
    return Processor(events_topic="events", derived_topic="derived", codec=codec), codec


def _record(codec: AvroCodec[ArtifactEvent], event: ArtifactEvent, offset: int) -> Record:
    return Record("events", 0, offset, event.key.encode(), codec.encode(event))


def test_many_events_of_one_key_become_one_state_write() -> None:
    processor, codec = _processor()
    key = "sha256:" + "a" * 64
    events = [storage(f"e{i}", key, minute=i) for i in range(20)]
    result = processor.process([_record(codec, e, i) for i, e in enumerate(events)], lambda k: None)
    assert list(result.states) == [key] and result.events == 20
    assert len(result.states[key][1].event_ids) == 20


def test_a_batch_that_changes_nothing_writes_nothing_but_reports_the_key_as_touched() -> None:
    processor, codec = _processor()
    key = "sha256:" + "b" * 64
    event = deployment("d1", key, minute=1)
    first = processor.process([_record(codec, event, 0)], lambda k: None)
    state = first.states[key][1]
    again = processor.process([_record(codec, event, 1)], lambda k: state)
    assert again.states == {} and again.derived == [] and key in again.touched


def test_poison_records_are_reported_and_do_not_stop_the_batch() -> None:
    processor, codec = _processor()
    key = "sha256:" + "c" * 64
    good = _record(codec, storage("ok", key, minute=1), 1)
    poison = [
        Record("events", 0, 0, b"k", b"\x00\x00\x00\x00\x01garbage"),
        Record("events", 0, 2, b"k", b"x"),
        Record("derived", 0, 3, b"k", b"{not json"),
    ]
    result = processor.process([poison[0], good, *poison[1:]], lambda k: None)
    assert [p.record.offset for p in result.poison] == [0, 2, 3]
    assert list(result.states) == [key]


def test_a_record_whose_kafka_key_differs_from_its_event_key_is_poison() -> None:
    processor, codec = _processor()
    event = storage("ok", "sha256:" + "d" * 64, minute=1)
    record = Record("events", 0, 0, b"sha256:" + b"e" * 64, codec.encode(event))
    result = processor.process([record], lambda k: None)
    assert result.poison and result.poison[0].code == "merge_rejected" and not result.states


def test_a_link_produces_derived_messages_for_the_other_digest() -> None:
    processor, codec = _processor()
    result = processor.process([_record(codec, link("l1", INDEX, platform_digest=AMD64, minute=1), 0)], lambda k: None)
    assert AMD64 in {d.target_key for d in result.derived}
    assert isinstance(result.states[INDEX][1], LinkedArtifactState)


def _run_batches(events: list[Any], *, local: bool, batch: int) -> tuple[dict[str, LinkedArtifactState], int, int]:
    """Feed events in batches through ``exchange`` as the worker does; messages for keys another worker
    owns go round through a simulated derived topic. Returns the states, messages sent through the topic
    and messages applied in-process."""
    processor, codec = _processor()
    states: dict[str, LinkedArtifactState] = {}
    refreshed: set[str] = set()
    queue = [_record(codec, e, i) for i, e in enumerate(events)]
    through_topic = applied = 0
    while queue:
        records, queue = queue[:batch], queue[batch:]
        outcome = exchange(
            processor,
            processor.process(records, states.get),
            states.get,
            remember=states.__setitem__,
            refreshed=refreshed,
            local_partition=(lambda key: 0) if local else (lambda key: None),
            max_rounds=50,
        )
        applied += outcome.applied_locally
        for message in outcome.remote:
            through_topic += 1
            queue.append(Record("derived", 0, -1, message.target_key.encode(), message.model_dump_json().encode()))
    return states, through_topic, applied


def test_messages_for_keys_owned_here_are_applied_in_process_with_the_same_result() -> None:
    events = [
        link("l1", INDEX, platform_digest=AMD64, minute=1),
        deployment("d1", INDEX, minute=2, risks=["internet-exposed"], asserted_by="defender-for-cloud"),
        deployment("d2", OTHER, minute=3),
        alert("a1", AMD64, minute=4, cvss=9.8),
        storage("s1", INDEX, minute=0),
    ]
    through_topic, topic_sent, _ = _run_batches(events, local=False, batch=2)
    in_process, local_sent, applied = _run_batches(events, local=True, batch=2)
    assert in_process == through_topic
    assert topic_sent > 0 and local_sent == 0 and applied > 0
    # The platform sees the index's deployment, ended by OTHER taking the slot; the index sees the alert.
    assert {d.kind for d in in_process[AMD64].inherited} == {"linked-context"}
    assert {d.kind for d in in_process[INDEX].inherited} >= {"linked-context", "slot-holder"}


def test_records_of_a_frozen_key_are_set_aside_and_its_state_stays_while_other_keys_fold() -> None:
    processor, codec = _processor()
    big, small = "sha256:" + "c" * 64, "sha256:" + "d" * 64
    stored = processor.process([_record(codec, storage("s0", big, minute=0), 0)], lambda k: None).states[big][1]
    processor.frozen.add(big)  # the linker found its next state too large to write
    events = [storage("s1", big, minute=1), storage("s2", small, minute=2)]
    records = [_record(codec, e, i) for i, e in enumerate(events)]
    result = processor.process(records, {big: stored}.get)
    assert list(result.states) == [small]  # the frozen key is neither changed nor touched
    assert big not in result.touched
    (poison,) = result.poison
    assert poison.record.offset == 0 and poison.code == FROZEN_CODE
    assert big in poison.reason and "worker_state_max_bytes" in poison.reason


def test_messages_produced_here_for_a_frozen_key_are_refused_for_the_dead_letter_topic() -> None:
    processor, codec = _processor()
    processor.frozen.add(AMD64)
    states: dict[str, LinkedArtifactState] = {}
    batch = processor.process([_record(codec, link("l1", INDEX, platform_digest=AMD64, minute=1), 0)], states.get)
    outcome = exchange(
        processor, batch, states.get, remember=states.__setitem__, refreshed=set(),
        local_partition=lambda key: 0, max_rounds=50,
    )
    assert outcome.refused and {m.target_key for m in outcome.refused} == {AMD64}
    assert AMD64 not in outcome.changed and INDEX in outcome.changed
    assert outcome.applied_locally == 0  # a refused message was not applied
