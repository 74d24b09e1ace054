"""Hypothesis strategies for alert filter expressions."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from history.alert_filter import (
    SEVERITIES,
    STATES,
    AlertQuery,
    And,
    Compare,
    Match,
    Node,
    Not,
    Or,
)
from linked_artifacts.events import RUNTIME_RISKS

# Values that occur in builders.Triage, plus values that match nothing and hostile text.
HOSTILE = [
    "x'); DROP TABLE events; --",
    "prod' OR '1'='1",
    'a"b',
    "(",
    ") OR (1=1",
    "\\",
    "; SYSTEM SHUTDOWN",
    "sleep(3)",
    "{f0:String}",
    "/* c */",
    "ünïcødé",
]
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12).map(
    str.lower
)


def _words(*known: str) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([*known, *(h.lower() for h in HOSTILE)]), _text)


TERMS: st.SearchStrategy[Node] = st.one_of(
    st.just(Match("has", "deployment")),
    st.sampled_from(RUNTIME_RISKS).map(lambda v: Match("runtime-risk", v)),
    _words("jfrog-artifactory", "ghcr", "docker-hub").map(lambda v: Match("artifact-registry", v)),
    st.sampled_from(["acme.jfrog.io", "ghcr.io", "registry.example"]).map(lambda v: Match("artifact-registry-url", v)),
    _words("prod", "staging", "dev").map(lambda v: Match("environment", v)),
    _words("acme/payments-api", "acme/other").map(lambda v: Match("repo", v)),
    st.sampled_from(SEVERITIES).map(lambda v: Match("severity", v)),
    st.sampled_from(STATES).map(lambda v: Match("is", v)),
    st.builds(
        Compare,
        st.just("cvss"),
        st.sampled_from([">", ">=", "<", "<=", "="]),
        st.sampled_from([0.0, 3.1, 7.0, 7.5, 8.1, 9.8, 10.0]),
    ),
    st.builds(
        Compare,
        st.just("epss"),
        st.sampled_from([">", ">=", "<", "<=", "="]),
        st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.3, 0.92, 1.0]),
    ),
)


def _combine(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        children.map(Not),
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
    )


EXPRESSIONS: st.SearchStrategy[Node] = st.recursive(TERMS, _combine, max_leaves=6)

AS_OF = st.one_of(
    st.none(),
    st.sampled_from([datetime(2025, 3, 3, 9, 15, tzinfo=UTC), datetime(2025, 3, 3, 9, 45, tzinfo=UTC)]),
)

QUERIES: st.SearchStrategy[AlertQuery] = st.builds(AlertQuery, st.one_of(st.none(), EXPRESSIONS), AS_OF)
