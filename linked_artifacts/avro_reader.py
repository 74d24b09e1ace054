"""Avro binary decoding compiled from a schema into Python source: fastavro's values, faster.

fastavro's reader walks the schema for every record, dispatching on each field's type by name. For an
event of ~40 fields that is ~38 us a record on this machine, the largest single cost of the worker
(bench/worker_cpu.py). Compiling the walk into straight-line Python once per schema (a varint's common
one-byte case inlined, a union's branch picked by an ``if``) reads the same record in a fraction of that.

It compiles the subset of Avro that ``linked_artifacts.avro_writer`` writes (primitives,
``timestamp-micros``, records, arrays, maps and unions), and gives fastavro's values: dicts for records,
lists, dicts for maps, aware UTC ``datetime`` for ``timestamp-micros`` (tests/unit/core/test_avro_reader.py
compares the two). A schema outside the subset raises ``UnsupportedSchema``, and callers keep fastavro. It
reads data written with the very schema it was compiled from: resolving an older writer's schema into ours
stays with fastavro (``linked_artifacts.avro.AvroCodec``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from linked_artifacts.avro_codegen import PRIMITIVES, SourceCompiler, UnsupportedSchema, full_name, namespace_of

_ReadAt = Callable[[bytes, int], tuple[Any, int]]  # a compiled function: the value at a position, and the next


class Reader(Protocol):
    def __call__(self, data: bytes, start: int = 0) -> Any: ...

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


class TruncatedData(ValueError):
    """The data ends inside a value."""


def _varint(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte (``first``, continuation bit set) was read: the raw unsigned
    value and the position after it. Unrolled: a timestamp's varint takes 8 bytes, and a loop cost twice
    as much. At most 10 bytes, as a 64-bit long takes."""
    value = first & 0x7F
    byte = data[pos]
    value |= (byte & 0x7F) << 7
    if byte < 0x80:
        return value, pos + 1
    byte = data[pos + 1]
    value |= (byte & 0x7F) << 14
    if byte < 0x80:
        return value, pos + 2
    byte = data[pos + 2]
    value |= (byte & 0x7F) << 21
    if byte < 0x80:
        return value, pos + 3
    byte = data[pos + 3]
    value |= (byte & 0x7F) << 28
    if byte < 0x80:
        return value, pos + 4
    byte = data[pos + 4]
    value |= (byte & 0x7F) << 35
    if byte < 0x80:
        return value, pos + 5
    byte = data[pos + 5]
    value |= (byte & 0x7F) << 42
    if byte < 0x80:
        return value, pos + 6
    byte = data[pos + 6]
    value |= (byte & 0x7F) << 49
    if byte < 0x80:
        return value, pos + 7
    byte = data[pos + 7]
    value |= (byte & 0x7F) << 56
    if byte < 0x80:
        return value, pos + 8
    byte = data[pos + 8]
    value |= (byte & 0x7F) << 63
    if byte < 0x80:
        return value, pos + 9
    raise ValueError("varint longer than 10 bytes")


def _count(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """A length, index or count whose first byte is not a small non-negative value: zig-zag decoded."""
    value = first
    if first & 0x80:
        value, pos = _varint(data, pos, first)
    return (value >> 1) ^ -(value & 1), pos


_times: dict[int, datetime] = {}


def _time(micros: int) -> datetime:
    """A ``timestamp-micros`` value as fastavro gives it. Remembered: building it costs ~1 us, and the
    events of one report or request share their times."""
    if len(_times) >= 4096:
        _times.clear()
    value = _times[micros] = _EPOCH + timedelta(0, 0, micros)
    return value


def compile_reader(schema: Any) -> Reader:
    """``read(data, start=0)``: the value the Avro binary ``data[start:]`` holds under ``schema`` (as
    fastavro's ``schemaless_reader`` gives it). Raises ``ValueError`` or ``IndexError`` on data that does
    not fit."""
    compiler = _Compiler()
    top = compiler.function_for(schema, namespace_of(schema))
    helpers = {
        "_varint": _varint,
        "_count": _count,
        "_times": _times,
        "_time": _time,
        "_DOUBLE": _DOUBLE.unpack_from,
        "_FLOAT": _FLOAT.unpack_from,
        "_Truncated": TruncatedData,
    }
    read_top: _ReadAt = compiler.load(schema, top, "reader", helpers)

    def read(data: bytes, start: int = 0) -> Any:
        try:
            value, end = read_top(data, start)
        except struct.error as exc:  # a double or float cut short: struct's error is not a ValueError
            raise TruncatedData(f"the data ends inside a value: {exc}") from exc
        if end > len(data):
            raise TruncatedData(f"the value needs {end} bytes, the data has {len(data)}")
        return value

    return read


class _Compiler(SourceCompiler):
    def function_for(self, schema: Any, namespace: str | None) -> str:
        """A function ``f(b, p) -> (value, p)`` reading ``schema``."""
        if isinstance(schema, dict) and schema.get("type") == "record":
            return self.record(schema, namespace)
        name = self.fresh("_read")
        lines = [f"def {name}(b, p):", *self.code(schema, namespace, "v", 1), "    return v, p"]
        self.functions.append("\n".join(lines))
        return name

    def record(self, schema: dict[str, Any], namespace: str | None) -> str:
        name: str = schema["name"]
        namespace = schema.get("namespace", namespace)
        function = self.fresh("_record_")
        self.named[full_name(name, namespace)] = function
        body: list[str] = []
        names: list[str] = []
        for field in schema["fields"]:
            variable = self.fresh("f")
            names.append(f"{field['name']!r}: {variable}")
            body.extend(self.code(field["type"], namespace, variable, 1))
        lines = [f"def {function}(b, p):", *body, f"    return {{{', '.join(names)}}}, p"]
        self.functions.append("\n".join(lines))
        return function

    def code(self, schema: Any, namespace: str | None, target: str, depth: int) -> list[str]:
        """Lines (indented ``depth`` levels) reading one ``schema`` value into ``target``, advancing ``p``."""
        pad = "    " * depth
        if isinstance(schema, list):
            return self.union(schema, namespace, target, depth)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return self.primitive(schema, target, depth)
            return [f"{pad}{target}, p = {self.reference(schema, namespace)}(b, p)"]
        if not isinstance(schema, dict):
            raise UnsupportedSchema(f"not a schema: {schema!r}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical == "timestamp-micros" and kind == "long":
            raw = self.fresh("t")
            return [
                *self.long(raw, depth),
                f"{pad}{target} = _times.get({raw})",
                f"{pad}if {target} is None: {target} = _time({raw})",
            ]
        if logical is not None:
            raise UnsupportedSchema(f"logical type {logical} on {kind}")
        if kind == "record":
            function = self.record(schema, namespace)
            return [f"{pad}{target}, p = {function}(b, p)"]
        if kind == "array":
            return self.array(schema["items"], namespace, target, depth)
        if kind == "map":
            return self.map(schema["values"], namespace, target, depth)
        if isinstance(kind, str) and kind in PRIMITIVES:
            return self.primitive(kind, target, depth)
        if isinstance(kind, dict | list):
            return self.code(kind, namespace, target, depth)
        raise UnsupportedSchema(f"type {kind!r}")

    def long(self, target: str, depth: int) -> list[str]:
        pad = "    " * depth
        return [
            f"{pad}{target} = b[p]",
            f"{pad}p += 1",
            f"{pad}if {target} & 0x80: {target}, p = _varint(b, p, {target})",
            f"{pad}{target} = ({target} >> 1) ^ -({target} & 1)",
        ]

    def small(self, target: str, depth: int) -> list[str]:
        """A long expected to be small and non-negative (a length, a count, an index): one byte below 64
        is the value doubled, anything else goes through ``_count``."""
        pad = "    " * depth
        return [
            f"{pad}{target} = b[p]",
            f"{pad}p += 1",
            f"{pad}if {target} & 0x81: {target}, p = _count(b, p, {target})",
            f"{pad}else: {target} >>= 1",
        ]

    def sized(self, target: str, depth: int, *, text: bool) -> list[str]:
        pad = "    " * depth
        size = self.fresh("n")
        end = self.fresh("e")
        return [
            *self.small(size, depth),
            f"{pad}{end} = p + {size}",
            f"{pad}if {size} < 0 or {end} > len(b): raise _Truncated('string or bytes past the end')",
            f"{pad}{target} = b[p:{end}]{'.decode()' if text else ''}",
            f"{pad}p = {end}",
        ]

    def primitive(self, kind: str, target: str, depth: int) -> list[str]:
        pad = "    " * depth
        if kind == "null":
            return [f"{pad}{target} = None"]
        if kind == "boolean":
            return [f"{pad}{target} = b[p] == 1", f"{pad}p += 1"]
        if kind in ("int", "long"):
            return self.long(target, depth)
        if kind == "float":
            return [f"{pad}{target}, = _FLOAT(b, p)", f"{pad}p += 4"]
        if kind == "double":
            return [f"{pad}{target}, = _DOUBLE(b, p)", f"{pad}p += 8"]
        if kind == "string":
            return self.sized(target, depth, text=True)
        return self.sized(target, depth, text=False)  # bytes

    def union(self, branches: list[Any], namespace: str | None, target: str, depth: int) -> list[str]:
        pad = "    " * depth
        index = self.fresh("u")
        lines = self.small(index, depth)
        for position, branch in enumerate(branches):
            keyword = "if" if position == 0 else "elif"
            lines.append(f"{pad}{keyword} {index} == {position}:")
            lines.extend(self.code(branch, namespace, target, depth + 1))
        lines.append(f"{pad}else: raise ValueError(f'union branch {{{index}}} of {len(branches)}')")
        return lines

    def blocks(self, target: str, depth: int, item: list[str]) -> list[str]:
        """An array's or map's blocks: a count, the items, ..., a zero count. A negative count is followed by
        the block's size in bytes (fastavro ignores it, so do we)."""
        pad = "    " * depth
        count = self.fresh("c")
        skipped = self.fresh("s")
        return [
            *self.small(count, depth),
            f"{pad}while {count}:",
            f"{pad}    if {count} < 0:",
            f"{pad}        {count} = -{count}",
            *self.long(skipped, depth + 2),
            f"{pad}    for _ in range({count}):",
            *item,
            *self.small(count, depth + 1),
        ]

    def array(self, items: Any, namespace: str | None, target: str, depth: int) -> list[str]:
        pad = "    " * depth
        value = self.fresh("a")
        return [
            f"{pad}{target} = []",
            *self.blocks(
                target,
                depth,
                [*self.code(items, namespace, value, depth + 2), f"{pad}        {target}.append({value})"],
            ),
        ]

    def map(self, values: Any, namespace: str | None, target: str, depth: int) -> list[str]:
        pad = "    " * depth
        key = self.fresh("k")
        value = self.fresh("m")
        return [
            f"{pad}{target} = {{}}",
            *self.blocks(
                target,
                depth,
                [
                    *self.sized(key, depth + 2, text=True),
                    *self.code(values, namespace, value, depth + 2),
                    f"{pad}        {target}[{key}] = {value}",
                ],
            ),
        ]

