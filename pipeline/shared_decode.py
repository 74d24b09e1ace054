"""One decode per event for the worker's two consumers of the events topic.

The linker (Faust) and the ClickHouse sink (its own consumer group) read the same records in one process
and decoded each one twice. A decode (Avro, then pydantic's validation) is ~45 us; the sink's share held
the GIL for ~2.3 s per 50,000 events in a live run (py-spy ``--gil``), time the linker waited for. Events
are frozen models, so whichever consumer decodes a record first leaves the model here for the other.

Each record is read by both consumers, so an entry is taken out on its second use. What one consumer
decoded and the other has yet to read is bounded by ``limit`` (oldest dropped first: the other consumer
then decodes it itself). A record that fails to decode is never kept; each consumer gets the error.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
M_co = TypeVar("M_co", bound=BaseModel, covariant=True)


class Decoder(Protocol[M_co]):
    def decode(self, data: bytes) -> M_co: ...


class SharedDecodes(Generic[M]):
    def __init__(self, codec: Decoder[M], *, limit: int) -> None:
        if limit < 1:
            raise ValueError("shared decodes keep at least one model")
        self.codec = codec
        self.limit = limit
        self._waiting: dict[bytes, M] = {}
        self.shared = 0  # decodes saved
        self.dropped = 0  # models dropped before their second reader came

    def decode(self, data: bytes) -> M:
        model = self._waiting.pop(data, None)
        if model is not None:
            self.shared += 1
            return model
        model = self.codec.decode(data)
        self._waiting[data] = model
        if len(self._waiting) > self.limit:
            del self._waiting[next(iter(self._waiting))]
            self.dropped += 1
        return model

    def __len__(self) -> int:
        return len(self._waiting)
