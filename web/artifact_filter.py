"""The alert filter vocabulary, read as a question about artifacts (the artifacts list).

The list takes the same queries as ``/v1/alerts`` (parsed by :func:`history.alert_filter.parse`, so the
grammar, the known filters and the error messages are the same). Each term keeps its meaning as a property
of the artifact; the alert terms describe the artifact's alerts, open ones unless ``is:`` says otherwise:

==============================  ============================================================================
``has:deployment``              the artifact is deployed now (at ``as-of``)
``runtime-risk:<risk>``         one of its deployments carries that risk
``environment:<name>``          it is deployed in that logical environment
``artifact-registry:<name>``    it is stored (active) in a registry of that kind
``artifact-registry-url:<h>``   it is stored (active) in a registry at that host
``repo:<owner/name>``           its builds name that source repository
``severity:<level>``            it has an open alert of that severity
``cvss:<op><n>``, ``epss:…``    its highest open CVSS (EPSS) compares so; no open score fails the comparison
``is:open``                     it has an open alert; ``is:fixed`` / ``is:dismissed`` / ``is:closed``: one
                                in that state
==============================  ============================================================================

So ``-severity:critical`` lists the artifacts without an open critical alert. The alerts of an artifact
are those the linked view shows: on any digest of its family, and repository alerts of its build
repositories. Values become server-side parameters, never SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from history.alert_filter import And, AsOf, Compare, FilterError, Match, Node, Not, Or

# Columns of the artifact summary (web.queries) that each text filter tests with has().
_ARRAY_COLUMN: Final = {
    "runtime-risk": "runtime_risks",
    "artifact-registry": "registries",
    "artifact-registry-url": "registry_hosts",
    "environment": "environments",
    "repo": "repositories",
}
_STATE_TEST: Final = {
    "open": "open_alerts > 0",
    "fixed": "fixed_alerts > 0",
    "dismissed": "dismissed_alerts > 0",
    "closed": "fixed_alerts + dismissed_alerts > 0",
}
_COMPARE_COLUMN: Final = {"cvss": "max_open_cvss", "epss": "max_open_epss"}


@dataclass(frozen=True, slots=True)
class ArtifactCondition:
    """A WHERE condition over the artifact summary columns and its bound parameters."""

    where: str
    parameters: dict[str, Any] = field(default_factory=dict)


class _Compiler:
    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}

    def bind(self, value: Any, sql_type: str) -> str:
        # "a" prefix: the list query binds its own parameters (as_of, paging) next to these.
        name = f"a{len(self.parameters)}"
        self.parameters[name] = value
        return "{" + name + ":" + sql_type + "}"

    def sql(self, node: Node) -> str:
        if isinstance(node, Match):
            return self.match(node)
        if isinstance(node, Compare):
            column = _COMPARE_COLUMN[node.qualifier]
            return f"ifNull({column} {node.op} {self.bind(node.number, 'Float64')}, 0)"
        if isinstance(node, Not):
            return f"NOT ({self.sql(node.operand)})"
        if isinstance(node, And | Or):
            joiner = " AND " if isinstance(node, And) else " OR "
            return "(" + joiner.join(self.sql(child) for child in node.operands) + ")"
        if isinstance(node, AsOf):
            raise FilterError("as-of: must stand at the top level of the query")
        raise FilterError(f"unsupported filter node {type(node).__name__}")

    def match(self, node: Match) -> str:
        if node.qualifier == "has":
            return "deployed = 1"
        if node.qualifier == "is":
            return _STATE_TEST[node.value]
        if node.qualifier == "severity":
            # The value is one of SEVERITIES (checked by the parser); each has its own count column.
            return f"open_{node.value} > 0"
        return f"has({_ARRAY_COLUMN[node.qualifier]}, {self.bind(node.value, 'String')})"


def compile_artifact_filter(expr: Node | None) -> ArtifactCondition:
    """SQL for a parsed query's predicate (``AlertQuery.expr``); None matches every artifact."""
    if expr is None:
        return ArtifactCondition("1")
    compiler = _Compiler()
    return ArtifactCondition(compiler.sql(expr), compiler.parameters)
