"""The alert filter language: GitHub's linked-artifact filter vocabulary with AND, OR and negation.

Grammar (keywords and qualifiers are case-insensitive)::

    query     := or_expr?
    or_expr   := and_expr ("OR" and_expr)*
    and_expr  := unary (["AND"] unary)*          -- terms side by side are ANDed, as on GitHub
    unary     := ("NOT" | "-") unary | "(" or_expr ")" | term
    term      := qualifier ":" value             -- -term negates, as on GitHub
    value     := bare characters up to a space or parenthesis | "double quoted" (\\" and \\\\ escape)

Filters (each one is a predicate over one result, an alert on one artifact family; see
``history.alerts.context_sql`` for how that context is built):

======================================  ===================================================================
``has:deployment``                      the artifact is deployed now (at ``as-of``)
``runtime-risk:<risk>``                 one of the artifact's deployments carries that runtime risk
``artifact-registry:<name>``            it is stored (active) in a registry of that kind, e.g. ``jfrog-artifactory``
``artifact-registry-url:<host>``        it is stored in a registry at that host (a URL is reduced to its host)
``environment:<name>``                  it is deployed in that logical environment
``repo:<owner/name>``                   the alert's repository, or a source repository its builds name
``severity:<level>``                    critical, high, medium, low, negligible, unknown
``cvss:<op><number>``                   ``>``, ``>=``, ``<``, ``<=``, ``=`` (or no operator: equal)
``epss:<op><number>``                   as cvss; EPSS is a probability 0..1
``is:<state>``                          open, fixed, dismissed, or closed (= not open)
``as-of:<time>``                        evaluate everything at that time (ISO 8601; UTC when no zone given)
======================================  ===================================================================

Each filter is tested on its own: ``environment:prod runtime-risk:internet-exposed`` means "deployed in
prod, and internet-exposed somewhere", as on GitHub. String values compare case-insensitively.
An alert without a CVSS (or EPSS) score fails every comparison on it, so ``-cvss:>7`` includes it.
``as-of`` may appear once, and only at the top level (it is not a predicate and cannot be negated).
An empty query matches every alert.

Values are never put into SQL text: each becomes a server-side parameter (``{f0:String}``), so quotes,
comments, semicolons or SQL keywords in a value are only ever compared as text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from history.rows import registry_host
from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.events import RUNTIME_RISKS

# Limits that keep a hostile query from costing more than a normal one: parsing is linear, but a
# deeply nested or enormous expression would still make large SQL.
MAX_QUERY_CHARS: Final = 2_000
MAX_TERMS: Final = 64
MAX_DEPTH: Final = 16

SEVERITIES: Final = ("critical", "high", "medium", "low", "negligible", "unknown")
STATES: Final = ("open", "fixed", "dismissed", "closed")
COMPARATORS: Final = (">=", "<=", ">", "<", "=")

KNOWN_FILTERS: Final[tuple[str, ...]] = (
    "has:deployment",
    "runtime-risk:<" + "|".join(RUNTIME_RISKS) + ">",
    "artifact-registry:<name>",
    "artifact-registry-url:<host>",
    "environment:<name>",
    "repo:<owner/name>",
    "severity:<" + "|".join(SEVERITIES) + ">",
    "cvss:<op><number> (op: >, >=, <, <=, =)",
    "epss:<op><number> (op: >, >=, <, <=, =)",
    "is:<" + "|".join(STATES) + ">",
    "as-of:<ISO 8601 time>",
)
_KNOWN_TEXT: Final = "known filters: " + ", ".join(KNOWN_FILTERS) + "; combine them with AND, OR, NOT, -filter, ( )"

Comparator = Literal[">=", "<=", ">", "<", "="]


class FilterError(LinkedArtifactsError):
    """The alert query is malformed. The message says where and lists the known filters."""

    code = "invalid_filter"

    def __init__(self, message: str) -> None:
        super().__init__(message, field="q", status=400)


class UnknownFilter(FilterError):
    """The query names a filter we do not have."""

    code = "unknown_filter"


# --- AST ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Match:
    """``qualifier:value`` for the text filters, has: and is:. ``value`` is normalised (lower case)."""

    qualifier: str
    value: str


@dataclass(frozen=True, slots=True)
class Compare:
    """``cvss:>7`` or ``epss:<=0.1``."""

    qualifier: Literal["cvss", "epss"]
    op: Comparator
    number: float


@dataclass(frozen=True, slots=True)
class AsOf:
    """``as-of:<time>``; only valid as a top-level conjunct, lifted out by :func:`parse`."""

    when: datetime


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Match | Compare | AsOf | Not | And | Or


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """A parsed query: the predicate (None: everything) and the point in time (None: now)."""

    expr: Node | None
    as_of: datetime | None = None


# --- tokenizer ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Token:
    kind: Literal["(", ")", "-", "and", "or", "not", "term"]
    position: int
    qualifier: str = ""
    value: str = ""


_QUALIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_STOP = frozenset(" \t\r\n()")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, i))  # type: ignore[arg-type]
            i += 1
        elif ch == "-" and i + 1 < n and not text[i + 1].isspace():
            # GitHub negation: -is:open, -(a OR b)
            tokens.append(_Token("-", i))
            i += 1
        else:
            token, i = _word(text, i)
            tokens.append(token)
    return tokens


def _word(text: str, start: int) -> tuple[_Token, int]:
    match = _QUALIFIER.match(text, start)
    end = match.end() if match else start
    if match and end < len(text) and text[end] == ":":
        value, after = _value(text, end + 1)
        return _Token("term", start, qualifier=match.group(0).lower(), value=value), after
    i = start
    while i < len(text) and text[i] not in _STOP:
        i += 1
    word = text[start:i]
    if word.upper() in ("AND", "OR", "NOT"):
        return _Token(word.lower(), start), i  # type: ignore[arg-type]
    raise FilterError(
        f"{_excerpt(word)} at position {start} is not a filter: free-text search is not supported, "
        f"write qualifier:value ({_KNOWN_TEXT})"
    )


def _value(text: str, start: int) -> tuple[str, int]:
    if start < len(text) and text[start] == '"':
        out: list[str] = []
        i = start + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
            elif ch == '"':
                return "".join(out), i + 1
            else:
                out.append(ch)
                i += 1
        raise FilterError(f"unterminated quoted value starting at position {start}")
    i = start
    while i < len(text) and text[i] not in _STOP:
        i += 1
    return text[start:i], i


def _excerpt(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


# --- parser ------------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.terms = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def or_expr(self, depth: int) -> Node:
        operands = [self.and_expr(depth)]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            operands.append(self.and_expr(depth))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self, depth: int) -> Node:
        operands = [self.unary(depth)]
        while (token := self.peek()) is not None and token.kind not in ("or", ")"):
            if token.kind == "and":
                self.take()
            operands.append(self.unary(depth))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError(f"the query nests deeper than {MAX_DEPTH} levels")
        token = self.peek()
        if token is None:
            raise FilterError("the query ends where a filter was expected")
        self.take()
        if token.kind in ("not", "-"):
            return Not(self.unary(depth + 1))
        if token.kind == "(":
            inner = self.or_expr(depth + 1)
            closing = self.peek()
            if closing is None or closing.kind != ")":
                raise FilterError(f"the parenthesis at position {token.position} is not closed")
            self.take()
            return inner
        if token.kind == "term":
            self.terms += 1
            if self.terms > MAX_TERMS:
                raise FilterError(f"the query has more than {MAX_TERMS} filters")
            return _term(token)
        raise FilterError(f"unexpected {token.kind.upper()!r} at position {token.position}")


def _number(qualifier: str, value: str) -> tuple[Comparator, float]:
    op: Comparator = "="
    for candidate in COMPARATORS:
        if value.startswith(candidate):
            op = candidate
            value = value[len(candidate) :]
            break
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not re.fullmatch(r"[0-9]+(\.[0-9]+)?|\.[0-9]+", value):
        raise FilterError(f"{qualifier}: {_excerpt(value)} is not a number; write e.g. {qualifier}:>0.5")
    return op, number


def _choice(qualifier: str, value: str, allowed: tuple[str, ...]) -> Match:
    lowered = value.lower()
    if lowered not in allowed:
        raise FilterError(f"{qualifier}: {_excerpt(value)} is not one of {', '.join(allowed)}")
    return Match(qualifier, lowered)


def _as_of(value: str) -> AsOf:
    text = value.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError as ex:
        raise FilterError(f"as-of: {_excerpt(value)} is not an ISO 8601 time, e.g. 2025-03-01T12:00:00Z") from ex
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return AsOf(when)


def _text_value(qualifier: str, value: str) -> Match:
    if not value:
        raise FilterError(f'{qualifier}: needs a value, e.g. {qualifier}:"..."')
    if qualifier == "artifact-registry-url":
        # Stored hosts come from rows.registry_host; the filter value goes through the same function,
        # so "https://acme.jfrog.io/artifactory/", "acme.jfrog.io" and "ACME.jfrog.io:443" all match.
        try:
            host = registry_host(value)
        except ValueError:
            host = ""
        if not host:
            raise FilterError(f"{qualifier}: {_excerpt(value)} is not a host name or URL")
        return Match(qualifier, host)
    return Match(qualifier, value.lower())


_TERM_BUILDERS: Final[dict[str, Callable[[str, str], Node]]] = {
    "has": lambda q, v: _choice(q, v, ("deployment",)),
    "runtime-risk": lambda q, v: _choice(q, v, RUNTIME_RISKS),
    "artifact-registry": _text_value,
    "artifact-registry-url": _text_value,
    "environment": _text_value,
    "repo": _text_value,
    "severity": lambda q, v: _choice(q, v, SEVERITIES),
    "is": lambda q, v: _choice(q, v, STATES),
    "cvss": lambda q, v: Compare("cvss", *_number(q, v)),
    "epss": lambda q, v: Compare("epss", *_number(q, v)),
    "as-of": lambda q, v: _as_of(v),
}


def _term(token: _Token) -> Node:
    builder = _TERM_BUILDERS.get(token.qualifier)
    if builder is None:
        raise UnknownFilter(
            f"unknown filter {_excerpt(token.qualifier + ':')} at position {token.position}; " + _KNOWN_TEXT
        )
    return builder(token.qualifier, token.value)


def parse(text: str) -> AlertQuery:
    """Parse a query; raises :class:`UnknownFilter` or :class:`FilterError` with a clear message."""
    if len(text) > MAX_QUERY_CHARS:
        raise FilterError(f"the query is longer than {MAX_QUERY_CHARS} characters")
    if "\x00" in text:
        raise FilterError("the query contains a NUL character")
    parser = _Parser(_tokenize(text))
    if not parser.tokens:
        return AlertQuery(None)
    expr = parser.or_expr(0)
    rest = parser.peek()
    if rest is not None:
        raise FilterError(f"unexpected {rest.kind!r} at position {rest.position}")
    return _lift_as_of(expr)


def _lift_as_of(expr: Node) -> AlertQuery:
    top = list(expr.operands) if isinstance(expr, And) else [expr]
    times = [node for node in top if isinstance(node, AsOf)]
    rest = [node for node in top if not isinstance(node, AsOf)]
    if len(times) > 1:
        raise FilterError("as-of: give one point in time")
    if any(_contains_as_of(node) for node in rest):
        raise FilterError("as-of: must stand at the top level of the query, outside OR, NOT and parentheses")
    body: Node | None = None if not rest else rest[0] if len(rest) == 1 else And(tuple(rest))
    return AlertQuery(body, times[0].when if times else None)


def _contains_as_of(node: Node) -> bool:
    if isinstance(node, AsOf):
        return True
    if isinstance(node, Not):
        return _contains_as_of(node.operand)
    if isinstance(node, And | Or):
        return any(_contains_as_of(child) for child in node.operands)
    return False


# --- rendering (the canonical text of a query; parse(render(q)) == q) -------------------------------------
def render(query: AlertQuery) -> str:
    parts = [] if query.expr is None else [_render(query.expr)]
    if query.as_of is not None:
        parts.append("as-of:" + query.as_of.isoformat())
    return " ".join(parts)


def _quote(value: str) -> str:
    if value and not any(ch in _STOP or ch == '"' or ch == "\\" for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(node: Node) -> str:
    if isinstance(node, Match):
        return f"{node.qualifier}:{_quote(node.value)}"
    if isinstance(node, Compare):
        return f"{node.qualifier}:{node.op}{node.number!r}"
    if isinstance(node, AsOf):
        return "as-of:" + node.when.isoformat()
    if isinstance(node, Not):
        return f"NOT ({_render(node.operand)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(_render(child) for child in node.operands) + ")"


# --- compiler: AST -> parameterised SQL over the alert context rows ---------------------------------------------
@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A WHERE condition over the columns of the alert context rows and its bound parameters."""

    where: str
    parameters: dict[str, Any] = field(default_factory=dict)
    as_of: datetime | None = None
    requires_deployment: bool = False
    # The parsed predicate, for evaluating it in Python (:func:`evaluate`); None matches everything.
    expr: Node | None = None


# The SQL of each filter. Only these fixed fragments and parameter names ever reach the SQL text.
_ARRAY_COLUMN: Final = {
    "runtime-risk": "runtime_risks",
    "artifact-registry": "registries",
    "artifact-registry-url": "registry_hosts",
    "environment": "environments",
    "repo": "repositories",
}
_DEPLOYMENT_FILTERS: Final = frozenset({"has", "runtime-risk", "environment"})


class _Compiler:
    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}

    def bind(self, value: Any, sql_type: str) -> str:
        name = f"f{len(self.parameters)}"
        self.parameters[name] = value
        return "{" + name + ":" + sql_type + "}"

    def sql(self, node: Node) -> str:
        if isinstance(node, Match):
            return self.match(node)
        if isinstance(node, Compare):
            # ifNull: a missing score fails the comparison, and NOT of that is true (two-valued logic).
            return f"ifNull({node.qualifier} {node.op} {self.bind(node.number, 'Float64')}, 0)"
        if isinstance(node, Not):
            return f"NOT ({self.sql(node.operand)})"
        if isinstance(node, And | Or):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.sql(child) for child in node.operands) + ")"
        raise FilterError("as-of: must stand at the top level of the query")

    def match(self, node: Match) -> str:
        if node.qualifier == "has":
            return "deployed = 1"
        if node.qualifier == "is":
            if node.value == "closed":
                return f"state != {self.bind('open', 'String')}"
            return f"state = {self.bind(node.value, 'String')}"
        if node.qualifier == "severity":
            return f"severity = {self.bind(node.value, 'String')}"
        return f"has({_ARRAY_COLUMN[node.qualifier]}, {self.bind(node.value, 'String')})"


def _requires_deployment(expr: Node | None) -> bool:
    # True when every matching alert must be deployed: a positive deployment filter among the
    # top-level conjuncts. The query may then start from deployed artifacts (the fast path).
    conjuncts = list(expr.operands) if isinstance(expr, And) else [expr] if expr is not None else []
    return any(isinstance(node, Match) and node.qualifier in _DEPLOYMENT_FILTERS for node in conjuncts)


def compile_query(query: AlertQuery) -> CompiledFilter:
    if query.expr is None:
        return CompiledFilter("1", {}, query.as_of, False)
    compiler = _Compiler()
    where = compiler.sql(query.expr)
    return CompiledFilter(where, compiler.parameters, query.as_of, _requires_deployment(query.expr), query.expr)


def compile_filter(text: str) -> CompiledFilter:
    """Parse and compile in one step."""
    return compile_query(parse(text))


# --- reference semantics (the meaning the SQL must have; used by the property tests) -------------------
def evaluate(expr: Node | None, alert: Mapping[str, Any]) -> bool:
    """Evaluate a filter over one alert context row (``history.alerts.context_sql``), in Python."""
    if expr is None:
        return True
    if isinstance(expr, Match):
        return _evaluate_match(expr, alert)
    if isinstance(expr, Compare):
        actual = alert[expr.qualifier]
        if actual is None:
            return False
        return bool(
            {
                ">": actual > expr.number,
                ">=": actual >= expr.number,
                "<": actual < expr.number,
                "<=": actual <= expr.number,
                "=": actual == expr.number,
            }[expr.op]
        )
    if isinstance(expr, Not):
        return not evaluate(expr.operand, alert)
    if isinstance(expr, And):
        return all(evaluate(child, alert) for child in expr.operands)
    if isinstance(expr, Or):
        return any(evaluate(child, alert) for child in expr.operands)
    raise FilterError("as-of: must stand at the top level of the query")


def _evaluate_match(node: Match, alert: Mapping[str, Any]) -> bool:
    if node.qualifier == "has":
        return bool(alert["deployed"])
    if node.qualifier == "is":
        return alert["state"] != "open" if node.value == "closed" else bool(alert["state"] == node.value)
    if node.qualifier == "severity":
        return bool(alert["severity"] == node.value)
    return node.value in alert[_ARRAY_COLUMN[node.qualifier]]
