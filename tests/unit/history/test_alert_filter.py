"""The filter language: parsing, errors, rendering, and what reaches the SQL text."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history.alert_filter import (
    KNOWN_FILTERS,
    AlertQuery,
    And,
    Compare,
    FilterError,
    Match,
    Not,
    Or,
    UnknownFilter,
    compile_query,
    parse,
    render,
)
from linked_artifacts.errors import LinkedArtifactsError

from .strategies import QUERIES

HAS = Match("has", "deployment")
EXPOSED = Match("runtime-risk", "internet-exposed")


def test_terms_side_by_side_are_anded() -> None:
    assert parse("has:deployment runtime-risk:internet-exposed") == AlertQuery(And((HAS, EXPOSED)))
    assert parse("has:deployment AND runtime-risk:internet-exposed") == parse(
        "has:deployment runtime-risk:internet-exposed"
    )


def test_precedence_not_over_and_over_or() -> None:
    crit, high = Match("severity", "critical"), Match("severity", "high")
    assert parse("severity:critical OR severity:high has:deployment") == AlertQuery(Or((crit, And((high, HAS)))))
    assert parse("(severity:critical OR severity:high) has:deployment") == AlertQuery(And((Or((crit, high)), HAS)))
    assert parse("NOT is:open has:deployment") == AlertQuery(And((Not(Match("is", "open")), HAS)))


def test_negation_forms_are_equivalent() -> None:
    assert parse("-is:open") == parse("NOT is:open") == parse("not is:open") == AlertQuery(Not(Match("is", "open")))
    assert parse("-(has:deployment OR is:fixed)") == AlertQuery(Not(Or((HAS, Match("is", "fixed")))))


def test_values_qualifiers_and_keywords_are_case_insensitive_and_quoted_values_keep_spaces() -> None:
    assert parse('Environment:"Prod EU" SEVERITY:Critical') == AlertQuery(
        And((Match("environment", "prod eu"), Match("severity", "critical")))
    )
    assert parse("repo:Acme/Payments-API") == AlertQuery(Match("repo", "acme/payments-api"))


def test_numeric_comparisons() -> None:
    assert parse("cvss:>7") == AlertQuery(Compare("cvss", ">", 7.0))
    assert parse("epss:>=0.1") == AlertQuery(Compare("epss", ">=", 0.1))
    assert parse("cvss:9.8") == AlertQuery(Compare("cvss", "=", 9.8))
    with pytest.raises(FilterError, match="not a number"):
        parse("cvss:>high")
    with pytest.raises(FilterError, match="not a number"):
        parse("epss:>nan")


def test_registry_url_filter_compares_hosts() -> None:
    expected = AlertQuery(Match("artifact-registry-url", "acme.jfrog.io"))
    assert parse("artifact-registry-url:https://ACME.jfrog.io/artifactory/") == expected
    assert parse("artifact-registry-url:acme.jfrog.io:443") == expected


def test_as_of_is_lifted_out_of_the_top_level_conjunction() -> None:
    query = parse("has:deployment as-of:2025-03-01T12:00:00Z")
    assert query == AlertQuery(HAS, datetime(2025, 3, 1, 12, tzinfo=UTC))
    assert parse("as-of:2025-03-01").as_of == datetime(2025, 3, 1, tzinfo=UTC)
    with pytest.raises(FilterError, match="top level"):
        parse("has:deployment OR as-of:2025-03-01")
    with pytest.raises(FilterError, match="top level"):
        parse("-as-of:2025-03-01")
    with pytest.raises(FilterError, match="one point in time"):
        parse("as-of:2025-03-01 as-of:2025-03-02")
    with pytest.raises(FilterError, match="ISO 8601"):
        parse("as-of:yesterday")


def test_unknown_filter_is_a_typed_error_listing_every_known_filter() -> None:
    with pytest.raises(UnknownFilter) as raised:
        parse("has:deployment lang:python")
    error = raised.value
    assert isinstance(error, LinkedArtifactsError)
    assert error.code == "unknown_filter"
    assert error.status == 400
    assert "'lang:'" in error.message
    for known in KNOWN_FILTERS:
        assert known in error.message


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("has:runtime", "not one of deployment"),
        ("runtime-risk:exposed", "not one of"),
        ("severity:urgent", "not one of"),
        ("is:maybe", "not one of"),
        ("environment:", "needs a value"),
        ("(has:deployment", "not closed"),
        ("has:deployment)", "unexpected"),
        ("has:deployment OR", "ends where a filter"),
        ("AND has:deployment", "unexpected 'AND'"),
        ("openssl", "free-text search is not supported"),
        ('repo:"unterminated', "unterminated"),
        ("x" * 3000, "longer than"),
        ("(" * 40 + "is:open" + ")" * 40, "deeper than"),
        (" ".join(["is:open"] * 100), "more than"),
    ],
)
def test_malformed_queries_get_clear_errors(query: str, message: str) -> None:
    with pytest.raises(FilterError, match=re.escape(message)):
        parse(query)


def test_empty_query_matches_everything() -> None:
    assert parse("   ") == AlertQuery(None)
    assert compile_query(parse("")).where == "1"


# Only these words may appear in compiled SQL outside the {fN:Type} placeholders.
_SQL_WORDS = {
    "deployed",
    "has",
    "runtime_risks",
    "registries",
    "registry_hosts",
    "environments",
    "repositories",
    "severity",
    "state",
    "cvss",
    "epss",
    "ifNull",
    "NOT",
    "AND",
    "OR",
}
_PLACEHOLDER = re.compile(r"\{f\d+:(?:String|Float64)\}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERIES)
def test_rendered_queries_parse_back_to_the_same_query(query: AlertQuery) -> None:
    assert parse(render(query)) == query


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(QUERIES)
def test_compiled_sql_contains_no_user_text(query: AlertQuery) -> None:
    compiled = compile_query(query)
    skeleton = _PLACEHOLDER.sub("?", compiled.where)
    assert set(re.findall(r"[A-Za-z_]+", skeleton)) <= _SQL_WORDS
    assert not set(skeleton) & set("'\"`;\\/*#")
    assert len(compiled.parameters) == len(_PLACEHOLDER.findall(compiled.where))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_is_parsed_or_refused_with_a_filter_error(text: str) -> None:
    try:
        query = parse(text)
    except FilterError:
        return
    compile_query(query)
