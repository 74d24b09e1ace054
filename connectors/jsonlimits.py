"""JSON parsing with depth and value-count limits, safe against hostile bodies.

``json.loads`` alone builds the whole structure before anyone can count it: 5 MiB of ``[{},{},…]`` becomes
about two million dicts (hundreds of MB), and deep nesting ends in a ``RecursionError``. So the body is
first pre-scanned as a flat token stream (a linear regex, nothing built) and refused as soon as it nests
deeper than ``max_depth`` or holds more than ``max_items`` values; only then does ``json.loads`` run.

Decisions, each the stricter of the sensible choices because refused input is dead-lettered, not lost:

- The body must be UTF-8 (RFC 8259 section 8.1); a leading byte-order mark is skipped.
- ``NaN``, ``Infinity`` and ``-Infinity`` are refused: they are not JSON and Avro/ClickHouse readers differ
  on them.
- Duplicate keys in one object are refused (422). Parsers disagree on which duplicate wins, so a body whose
  signature was verified once could mean two different things to two readers.
- Escaped lone UTF-16 surrogates (``"\\ud800"``) are refused: they cannot be encoded as UTF-8 later.

Every refusal is an ``InputError`` with a stable code, so the caller answers 4xx and dead-letters the body.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

from connectors.base import InputError

# One token per match, in linear time even on malformed input: the string alternative never fails (its
# closing quote is optional), so an unterminated string cannot make the engine rescan the rest of the body.
_TOKEN = re.compile(
    r"""
    (?P<string>"[^"\\]*(?:\\[\s\S][^"\\]*)*"?)(?P<colon>[ \t\r\n]*:)?
    | (?P<open>[\[{])
    | (?P<close>[\]}])
    | (?P<scalar>[^\s\[\]{},:"]+)
    """,
    re.VERBOSE,
)
# The same tokens counted in a few passes over the whole body instead of a Python step per token (~3x faster
# on the bodies the connectors see): strings collapse to one '"' each, then keys ('"' before ':'), scalars
# and brackets are counted.
_STRING = re.compile(r'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')
_SPACED_KEY = re.compile(r'"[ \t\r\n]+:')
_SCALAR = re.compile(r'[^\s\[\]{},:"]+')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_BOM = "\ufeff"


def decode_utf8(body: bytes) -> str:
    """The body as text, or a 400 naming the first byte that is not UTF-8."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"request body is not valid UTF-8 (invalid byte 0x{body[exc.start]:02x} at offset {exc.start})",
            field="body",
            status=400,
            code="invalid_encoding",
        ) from None
    return text[1:] if text.startswith(_BOM) else text


def prescan(text: str, *, max_depth: int, max_items: int) -> tuple[int, int]:
    """Count nesting depth and values without building anything. Returns (deepest, values).

    Values are objects, arrays, strings that are not keys, numbers and literals. Malformed input is not
    diagnosed here (``json.loads`` does that); the counts only need to bound what ``json.loads`` builds.
    """
    deepest, items = _counts(text)
    if deepest > max_depth or items > max_items:
        _scan(text, max_depth=max_depth, max_items=max_items)  # raises, naming where the limit was crossed
    return deepest, items


def _counts(text: str) -> tuple[int, int]:
    """What ``_scan`` counts, in a few passes of C code over the text.

    The values are the same. The depth is the running sum of brackets without ``_scan``'s floor at zero, so
    it can only be lower, and only after a close without its open: ``json.loads`` stops at that close, so
    nothing after it is ever built. Before it, the two sums are equal.
    """
    collapsed, strings = _collapse_strings(text)
    keys = collapsed.count('":') + len(_SPACED_KEY.findall(collapsed))
    scalars = _SCALAR.subn("", collapsed)[1]
    brackets = _NOT_BRACKET.sub("", collapsed)
    opens = brackets.count("[") + brackets.count("{")
    steps = array("b", brackets.encode("ascii").translate(_BRACKET_STEP))
    deepest = max(0, max(accumulate(steps), default=0))
    return deepest, opens + scalars + strings - keys


def _collapse_strings(text: str) -> tuple[str, int]:
    """The text with every string (an unterminated one runs to the end) replaced by one '"', and how many."""
    if "\\" in text:  # an escaped quote does not end its string: only the regex knows
        return _STRING.subn('"', text)
    parts = text.split('"')
    outside = '"'.join(parts[0::2])
    # An odd number of quotes leaves the last string open to the end of the text.
    return (outside + '"' if len(parts) % 2 == 0 else outside), len(parts) // 2


def _scan(text: str, *, max_depth: int, max_items: int) -> tuple[int, int]:
    """The token-by-token count, which stops at the first value over a limit (and says where)."""
    depth = deepest = items = 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "close":
            depth = max(depth - 1, 0)
            continue
        if kind == "colon":  # a string followed by ':' is a key, not a value
            continue
        items += 1
        if items > max_items:
            raise InputError(
                f"JSON body has more than max_json_items ({max_items}) values",
                field="body",
                status=413,
                code="too_many_values",
            )
        if kind == "open":
            depth += 1
            if depth > max_depth:
                raise InputError(
                    f"JSON nesting exceeds max_json_depth ({max_depth}) at character {match.start()}",
                    field="body",
                    status=422,
                    code="too_deep",
                )
            deepest = max(deepest, depth)
    return deepest, items


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InputError(
                    f"duplicate key {key[:80]!r} in a JSON object",
                    field=key[:200],
                    status=422,
                    code="duplicate_key",
                )
            seen.add(key)
    return obj


def _constant(name: str) -> Any:
    raise InputError(f"{name} is not a JSON number", field="body", status=400, code="invalid_json")


def parse_json(body: bytes, *, max_depth: int, max_items: int) -> Any:
    """Parse a request body, refusing it before it can exhaust memory or the stack.

    Raises ``InputError``: 400 (not UTF-8, empty, not JSON), 413 (too many values), 422 (too deep,
    duplicate key).
    """
    text = decode_utf8(body)
    if not text.strip():
        raise InputError(
            "request body is empty; expected a JSON document", field="body", status=400, code="empty_body"
        )
    prescan(text, max_depth=max_depth, max_items=max_items)
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except RecursionError:  # only reachable if max_json_depth is set above the interpreter's limit
        raise InputError("JSON nesting is too deep", field="body", status=422, code="too_deep") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing more than 4300 digits
        raise InputError(
            f"request body is not valid JSON: {exc}", field="body", status=400, code="invalid_json"
        ) from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(
                "JSON string holds a lone UTF-16 surrogate escape",
                field="body",
                status=400,
                code="invalid_json",
            ) from None
    return value
