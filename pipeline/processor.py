"""One batch of consumed records in, state writes and messages out. No Faust here.

The Faust agent hands over a batch of raw Kafka records (canonical events and derived messages from other
keys). The processor decodes them, folds each key's records into its state with the pure merge, and
returns what the agent must write: the new state per changed key (table + changelog), the enriched
record per changed key, the derived messages for other keys, and dead letters for poison records.

Coalescing per key is what makes a batch cheaper than one table write per event: a key touched by 50
events in a batch is read once, written once and published once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from linked_artifacts.avro import AvroCodec, DecodeError
from linked_artifacts.events import ArtifactEvent
from pipeline.derive import derived_from, outgoing
from pipeline.merge import event_delta, join_all
from pipeline.state import Derived, LinkedArtifactState, MergeError, changed, empty_state, trusted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, reduced to what the processor needs."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class Poison:
    record: Record
    reason: str
    code: str


@dataclass
class BatchResult:
    # key -> (partition, state): `states` changed in this batch, `touched` were in it, changed or not.
    states: dict[str, tuple[int, LinkedArtifactState]] = field(default_factory=dict)
    touched: dict[str, tuple[int, LinkedArtifactState]] = field(default_factory=dict)
    derived: list[Derived] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    # Messages produced here for a frozen key (see Processor.frozen): dead-lettered, like its records.
    refused: list[Derived] = field(default_factory=list)
    events: int = 0
    derived_in: int = 0


FROZEN_CODE = "state_too_large"


StateLookup = Callable[[str], LinkedArtifactState | None]


class Processor:
    def __init__(self, *, events_topic: str, derived_topic: str, codec: AvroCodec[ArtifactEvent]) -> None:
        self.events_topic = events_topic
        self.derived_topic = derived_topic
        self.codec = codec
        # Keys whose state reached the most the worker writes (settings.worker_state_max_bytes): their records
        # are set aside as poison, with code FROZEN_CODE, so the key's state stays what it was.
        self.frozen: set[str] = set()

    def decode(self, record: Record) -> ArtifactEvent | Derived:
        if record.topic == self.derived_topic:
            try:
                return Derived.model_validate_json(record.value)
            except ValueError as exc:
                raise DecodeError(f"derived message is not valid: {exc}") from exc
        return self.codec.decode(record.value)

    def process(self, records: list[Record], lookup: StateLookup) -> BatchResult:
        """Decode the records and fold them into their states; poison records are set aside."""
        result = BatchResult()
        entries: list[_Entry] = []
        for record in records:
            try:
                item = self.decode(record)
                key = _key(item)
                if record.key is not None and record.key.decode(errors="replace") != key:
                    raise MergeError(f"record key {record.key[:80]!r} differs from the event's key {key!r}")
                if key in self.frozen:  # said once, when it froze: not a warning per record
                    result.poison.append(Poison(record, frozen_reason(key), FROZEN_CODE))
                    continue
                # The delta is where the merge's rules refuse an event: inside the poison guard.
                entries.append((key, _delta(item), record.partition, isinstance(item, ArtifactEvent)))
            except (DecodeError, MergeError, ValueError) as exc:
                code = getattr(exc, "code", "invalid")
                log.warning("poison record %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
                result.poison.append(Poison(record, str(exc), code))
        return _fold(entries, lookup, result)

    def process_messages(self, messages: list[tuple[Derived, int]], lookup: StateLookup) -> BatchResult:
        """Fold derived messages produced here (each with its target's partition) into their states."""
        result = BatchResult()
        result.refused = [m for m, _ in messages if m.target_key in self.frozen]
        entries = [(m.target_key, _delta(m), partition, False) for m, partition in messages
                   if m.target_key not in self.frozen]
        return _fold(entries, lookup, result)


def frozen_reason(key: str) -> str:
    return (f"the state of {key} reached worker_state_max_bytes: the key takes nothing more (its events stay "
            "in the history)")


# key, the one-item state, the key's partition, and whether it is an event (else a derived message)
_Entry = tuple[str, LinkedArtifactState, int, bool]


def _fold(entries: list[_Entry], lookup: StateLookup, result: BatchResult) -> BatchResult:
    # A key's deltas are joined into its (large) stored state at once: the join is associative and
    # commutative, so this equals merging record by record, at a fraction of the cost for hot keys.
    deltas: dict[str, list[LinkedArtifactState]] = {}
    partitions: dict[str, int] = {}
    for key, delta, partition, is_event in entries:
        deltas.setdefault(key, []).append(delta)
        partitions[key] = partition
        if is_event:
            result.events += 1
        else:
            result.derived_in += 1
    for key, parts in deltas.items():
        before = lookup(key) or empty_state(key)
        after = join_all(before, parts)
        result.touched[key] = (partitions[key], after)
        if changed(before, after):
            result.states[key] = (partitions[key], after)
            result.derived.extend(derived_from(before, after))
    return result


def _key(item: ArtifactEvent | Derived) -> str:
    return item.key if isinstance(item, ArtifactEvent) else item.target_key


def _delta(item: ArtifactEvent | Derived) -> LinkedArtifactState:
    """The state holding just this event or message (what ``merge``/``apply_derived`` join in)."""
    if isinstance(item, ArtifactEvent):
        return event_delta(item)
    return trusted(LinkedArtifactState, key=item.target_key, inherited=[item], version=item.origin_version)


def now() -> datetime:
    return datetime.now(tz=UTC)


@dataclass
class Outcome:
    """What a batch, with the derived messages it set off among the keys owned here, leaves to write and send."""

    changed: dict[str, tuple[int, LinkedArtifactState]] = field(default_factory=dict)
    touched: dict[str, tuple[int, LinkedArtifactState]] = field(default_factory=dict)
    fresh: set[str] = field(default_factory=set)  # keys touched for the first time since assignment
    remote: list[Derived] = field(default_factory=list)  # messages for keys another worker owns
    refused: list[Derived] = field(default_factory=list)  # messages for frozen keys owned here
    applied_locally: int = 0


def exchange(
    processor: Processor,
    batch: BatchResult,
    lookup: StateLookup,
    *,
    remember: Callable[[str, LinkedArtifactState], None],
    refreshed: set[str],
    local_partition: Callable[[str], int | None],
    max_rounds: int,
) -> Outcome:
    """Apply a batch's derived messages to the keys owned here at once, round after round, and collect the
    rest for the derived topic.

    A message to a key owned here would come back to this very worker through the topic; applying it
    directly saves a produce and a consume per message, and the state it changes is written and published
    once with the batch's other changes. The exchange always ends (``pipeline.derive``); ``max_rounds``
    only sends the rest through the topic if a chain ever ran long. ``remember`` makes a new state visible
    to ``lookup`` for the next round.
    """
    outcome = Outcome()
    result = batch
    for rounds in range(1, max_rounds + 1):
        outcome.changed.update(result.states)
        outcome.touched.update(result.touched)
        for key, (_, state) in result.states.items():
            remember(key, state)
        # After a crash, records past the last commit are replayed. Their changelog write may have
        # landed while the enriched record or a derived message did not (sends to different partitions
        # are not atomic), and a replayed record then changes nothing. So the first time a key is
        # touched after assignment, everything it stands behind is sent again (its full ``outgoing``
        # replaces its messages of this round); the receivers are idempotent (versioned snapshots,
        # last-record-wins topic).
        fresh = [(key, state) for key, (_, state) in result.touched.items() if key not in refreshed]
        fresh_keys = {key for key, _ in fresh}
        refreshed.update(fresh_keys)
        outcome.fresh.update(fresh_keys)
        # One pass over the round's messages: filtering them once per fresh key was quadratic in the batch.
        derived = [d for d in result.derived if d.origin_key not in fresh_keys]
        for _, state in fresh:
            derived.extend(outgoing(state))
        local: list[tuple[Derived, int]] = []
        for message in derived:
            partition = local_partition(message.target_key) if rounds < max_rounds else None
            if partition is None:
                outcome.remote.append(message)
            else:
                local.append((message, partition))
        if not local:
            break
        result = processor.process_messages(local, lookup)
        outcome.refused.extend(result.refused)
        outcome.applied_locally += len(local) - len(result.refused)
    return outcome
