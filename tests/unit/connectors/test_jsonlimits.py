from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import InputError
from connectors.jsonlimits import _STRING, _counts, _scan, parse_json, prescan

LIMITS = {"max_depth": 8, "max_items": 100}


def refused(body: bytes, **limits: int) -> InputError:
    with pytest.raises(InputError) as info:
        parse_json(body, **{**LIMITS, **limits})
    return info.value


def test_parses_a_document_within_limits() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", true, null, {"b": {}}]}', **LIMITS) == {
        "a": [1, 2.5, "x", True, None, {"b": {}}]
    }


def test_empty_body_is_400() -> None:
    error = refused(b"  \n")
    assert (error.status, error.code) == (400, "empty_body")


def test_non_utf8_body_is_400_naming_the_byte() -> None:
    error = refused(b'{"a": "\xff"}')
    assert (error.status, error.code, error.field) == (400, "invalid_encoding", "body")
    assert "0xff at offset 7" in error.message


def test_utf16_body_is_refused_as_not_utf8() -> None:
    assert refused('{"a": 1}'.encode("utf-16")).code == "invalid_encoding"


def test_leading_byte_order_mark_is_skipped() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": 1}', **LIMITS) == {"a": 1}


@pytest.mark.parametrize("body", [b'{"a": [1, 2', b'{"a": "x', b"[1,]", b"{'a': 1}", b"nope", b'{"a":1} x'])
def test_truncated_or_malformed_json_is_400(body: bytes) -> None:
    error = refused(body)
    assert (error.status, error.code) == (400, "invalid_json")


def test_nesting_at_the_limit_is_accepted_and_one_deeper_is_422() -> None:
    assert parse_json(b"[" * 8 + b"]" * 8, **LIMITS) is not None
    error = refused(b"[" * 9 + b"]" * 9)
    assert (error.status, error.code) == (422, "too_deep")


def test_deep_nesting_is_refused_before_json_loads_recurses() -> None:
    # 1 MiB of '[' would end in RecursionError inside json.loads; the pre-scan stops at depth 9.
    assert refused(b"[" * (1 << 20), max_items=10**9).code == "too_deep"


def test_brackets_inside_strings_do_not_count() -> None:
    body = json.dumps({"a": "[[[[[[[[[[{{{{{{{{{{", "b": '\\"[[[[[[[[[['}).encode()
    assert parse_json(body, **LIMITS)["a"].startswith("[[[")


def test_too_many_values_is_413_and_keys_do_not_count() -> None:
    assert len(parse_json(json.dumps({f"k{i}": i for i in range(99)}).encode(), **LIMITS)) == 99
    error = refused(json.dumps(list(range(100))).encode())  # 100 numbers + the array = 101 values
    assert (error.status, error.code) == (413, "too_many_values")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(literal: str) -> None:
    error = refused(f'{{"score": {literal}}}'.encode())
    assert (error.status, error.code) == (400, "invalid_json")


def test_duplicate_keys_are_422_naming_the_key() -> None:
    error = refused(b'{"digest": "sha256:aa", "x": {"digest": 1, "digest": 2}}')
    assert (error.status, error.code, error.field) == (422, "duplicate_key", "digest")


def test_lone_surrogate_escape_is_refused_but_a_pair_is_fine() -> None:
    assert refused(b'{"a": "\\ud800"}').code == "invalid_json"
    assert parse_json(b'{"a": "\\ud83d\\ude00"}', **LIMITS) == {"a": "\U0001f600"}


def test_integer_with_too_many_digits_is_400() -> None:
    assert refused(b"[" + b"9" * 5000 + b"]").code == "invalid_json"


@pytest.mark.parametrize(
    "body",
    [
        b'"' + b'\\"' * 2_500_000,  # unterminated string of escaped quotes: must not rescan (quadratic)
        b'"\\' * 2_500_000,
        b"[1," * 1_700_000,
        b"[{}," * 1_300_000,
        b'"' * 5_000_000,
    ],
    ids=["escaped-quotes", "quote-backslash", "many-numbers", "many-objects", "many-quotes"],
)
def test_hostile_five_mib_bodies_are_refused_quickly(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(InputError):
        parse_json(body, max_depth=64, max_items=200_000)
    assert time.perf_counter() - started < 3.0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


def _depth_and_count(value: Any) -> tuple[int, int]:
    if isinstance(value, list):
        inner = [_depth_and_count(v) for v in value]
    elif isinstance(value, dict):
        inner = [_depth_and_count(v) for v in value.values()]
    else:
        return 0, 1
    return 1 + max((d for d, _ in inner), default=0), 1 + sum(c for _, c in inner)


@given(json_values, st.booleans())
@settings(max_examples=300)
def test_prescan_counts_exactly_what_json_loads_builds(value: Any, indent: bool) -> None:
    text = json.dumps(value, indent=2 if indent else None)
    assert prescan(text, max_depth=10**6, max_items=10**6) == _depth_and_count(value)
    assert parse_json(text.encode(), max_depth=10**6, max_items=10**6) == value


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_give_a_value_or_an_input_error(body: bytes) -> None:
    try:
        parse_json(body, **LIMITS)
    except InputError as error:
        assert error.status in (400, 413, 422)


json_ish = st.text(alphabet='[]{}",: \\\n\tab1-.e', max_size=60)


@given(json_ish)
@settings(max_examples=500)
def test_fast_counts_agree_with_the_token_scan_on_any_text(text: str) -> None:
    # The regex-engine passes count the values exactly as the token loop does, valid JSON or not. Their
    # depth has no floor at zero, so it is lower only after a close without its open (where json.loads
    # stops); a text whose closes never outrun its opens gets the same depth.
    deepest, items = _counts(text)
    scan_deepest, scan_items = _scan(text, max_depth=10**6, max_items=10**6)
    assert items == scan_items
    assert deepest <= scan_deepest
    collapsed = _STRING.sub("", text)
    running = 0
    floored = False
    for char in collapsed:
        running += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        floored = floored or running < 0
    if not floored:
        assert deepest == scan_deepest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "x', (1, 2)),  # unterminated string, no backslash: the split path
        ('{"a": "x\\"]]]', (1, 2)),  # escaped quote: the regex path keeps the brackets inside the string
        ('["a" , "b":1]', (1, 3)),  # a key-like string with a space before ':' is still a key
        ("]]][[", (0, 2)),  # closes first: no floor, so the depth stays low (json.loads refuses at once)
    ],
)
def test_fast_counts_edge_cases(text: str, expected: tuple[int, int]) -> None:
    assert _counts(text) == expected


def test_a_limit_crossed_is_reported_where_the_token_scan_finds_it() -> None:
    with pytest.raises(InputError) as info:
        prescan('{"a": [[[["x"]]]]}', max_depth=3, max_items=100)
    assert (info.value.code, "at character 8" in info.value.message) == ("too_deep", True)
