"""Avro encoding of linked-artifact states for the enriched topic, reusing the bytes of unchanged records.

A state is published whole every time it changes, but a change touches one or two of its records: the
join keeps every other record as the very same frozen object. Encoding each record once and splicing its
bytes into the next versions of the state gives the same bytes as encoding the state from scratch (Avro
has no framing inside a record: a record is its fields in order, an array is a count, the items and a
zero), at a fraction of the cost: the enriched encode was the largest single cost of the worker.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from linked_artifacts.avro import _HEADER, MAGIC, AvroCodec
from linked_artifacts.avro_writer import Write, compile_writer, write_long, write_string
from pipeline.state import LinkedArtifactState

# The state's fields in schema order: three scalars written here, then arrays of records.
_SCALARS = ("key", "version", "event_ids")
_RECORD_ARRAYS = ("storage", "builds", "deployments", "alerts", "links", "inherited")


class StateEncoder:
    """``AvroCodec.encode`` for ``LinkedArtifactState``, byte for byte, with a cache of encoded records.

    The cache is keyed by object identity and holds the object, so an id is never reused while cached.
    It keeps at most twice ``cache_size`` records in two generations (see ``_remember``).
    """

    def __init__(self, codec: AvroCodec[LinkedArtifactState], *, cache_size: int = 100_000) -> None:
        self.codec = codec
        schema = codec.schema
        fields = [field["name"] for field in schema["fields"]]
        if fields != [*_SCALARS, *_RECORD_ARRAYS]:
            raise ValueError(f"linked_artifact schema fields changed ({fields}); update pipeline.enriched")
        definitions = _definitions(schema)
        namespace = schema.get("namespace")
        self._item_writers: dict[str, Write] = {}
        for field in schema["fields"][len(_SCALARS) :]:
            items = field["type"]["items"]
            name = items if isinstance(items, str) else items["name"]
            standalone = _standalone(definitions[name.rsplit(".", 1)[-1]], definitions, namespace)
            self._item_writers[field["name"]] = compile_writer(standalone)
        self._cache: dict[int, tuple[BaseModel, bytes]] = {}
        self._previous: dict[int, tuple[BaseModel, bytes]] = {}
        self._cache_size = cache_size
        self.hits = 0
        self.misses = 0

    def encode(self, state: LinkedArtifactState) -> bytes:
        out = bytearray(_HEADER.pack(MAGIC, self.codec.schema_id))
        write_string(out, state.key)
        write_long(out, state.version)
        write_long(out, len(state.event_ids))
        if state.event_ids:
            for event_id in state.event_ids:
                write_string(out, event_id)
            write_long(out, 0)
        for name in _RECORD_ARRAYS:
            items: list[BaseModel] = getattr(state, name)
            write_long(out, len(items))
            if items:
                write = self._item_writers[name]
                for item in items:
                    out += self._record_bytes(item, write)
                write_long(out, 0)
        return bytes(out)

    def _record_bytes(self, item: BaseModel, write: Write) -> bytes:
        cached = self._cache.get(id(item))
        if cached is None:
            cached = self._previous.get(id(item))
            if cached is not None and cached[0] is item:
                self._remember(item, cached[1])  # still in use: keep it in the young generation
        if cached is not None and cached[0] is item:
            self.hits += 1
            return cached[1]
        self.misses += 1
        buffer = bytearray()
        write(buffer, item)
        data = bytes(buffer)
        self._remember(item, data)
        return data

    def _remember(self, item: BaseModel, data: bytes) -> None:
        if len(self._cache) >= self._cache_size:
            # Two generations, an approximate LRU for the price of a dict: records of the states being
            # published move to the young one; replaced records age out with the old one.
            self._previous, self._cache = self._cache, {}
        self._cache[id(item)] = (item, data)


def _definitions(schema: Any) -> dict[str, dict[str, Any]]:
    """Every named record or enum of a schema by its short name, as first defined."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for branch in node:
                walk(branch)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in ("record", "enum", "fixed") and node["name"] not in found:
                found[node["name"]] = node
                for field in node.get("fields", []):
                    walk(field["type"])
            elif kind == "array":
                walk(node["items"])
            elif kind == "map":
                walk(node["values"])
            elif isinstance(kind, dict | list):
                walk(kind)

    walk(schema)
    return found


def _standalone(definition: dict[str, Any], definitions: dict[str, dict[str, Any]], namespace: str | None) -> Any:
    """A record's schema on its own: every named type it uses defined at its first use."""
    defined: set[str] = set()

    def resolve(node: Any) -> Any:
        if isinstance(node, list):
            return [resolve(branch) for branch in node]
        if isinstance(node, str):
            short = node.rsplit(".", 1)[-1]
            return resolve(definitions[short]) if short in definitions and short not in defined else node
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind in ("record", "enum", "fixed"):
            return define(node)
        if kind == "array":
            return {**node, "items": resolve(node["items"])}
        if kind == "map":
            return {**node, "values": resolve(node["values"])}
        return {**node, "type": resolve(kind)} if kind not in _PRIMITIVES else node

    def define(node: dict[str, Any]) -> Any:
        if node["name"] in defined:
            return node["name"]
        defined.add(node["name"])
        if "fields" not in node:
            return node
        return {**node, "fields": [{**field, "type": resolve(field["type"])} for field in node["fields"]]}

    standalone = resolve(definition)
    if namespace and "namespace" not in standalone:
        standalone = {**standalone, "namespace": namespace}
    return standalone


_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
