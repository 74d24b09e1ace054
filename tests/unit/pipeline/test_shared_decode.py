from __future__ import annotations

import pytest

from linked_artifacts.avro import DecodeError
from pipeline.shared_decode import SharedDecodes
from pipeline.state import LinkedArtifactState, empty_state


class CountingCodec:
    def __init__(self) -> None:
        self.calls = 0

    def decode(self, data: bytes) -> LinkedArtifactState:
        self.calls += 1
        if data == b"poison":
            raise DecodeError("not Avro")
        return empty_state(data.decode())


def test_the_second_reader_of_a_record_gets_the_first_ones_model() -> None:
    codec = CountingCodec()
    shared = SharedDecodes(codec, limit=10)
    first = shared.decode(b"a")
    assert shared.decode(b"a") is first
    assert (codec.calls, shared.shared, len(shared)) == (1, 1, 0)
    # Taken out on its second use: a third read (a replay) decodes again.
    assert shared.decode(b"a") == first
    assert codec.calls == 2


def test_beyond_the_limit_the_oldest_model_is_dropped_and_decoded_again() -> None:
    codec = CountingCodec()
    shared = SharedDecodes(codec, limit=2)
    for data in (b"a", b"b", b"c"):
        shared.decode(data)
    assert (len(shared), shared.dropped) == (2, 1)
    shared.decode(b"a")  # dropped: decoded again
    shared.decode(b"c")  # still waiting: shared
    assert (codec.calls, shared.shared) == (4, 1)


def test_a_record_that_fails_to_decode_fails_for_each_reader() -> None:
    codec = CountingCodec()
    shared = SharedDecodes(codec, limit=2)
    for _ in range(2):
        with pytest.raises(DecodeError):
            shared.decode(b"poison")
    assert (codec.calls, len(shared)) == (2, 0)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        SharedDecodes(CountingCodec(), limit=0)
