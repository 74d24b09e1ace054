from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.scans import parse_scan

PAYLOADS = Path(__file__).parent / "payloads"
RECEIVED = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def load(path: str) -> Any:
    return json.loads((PAYLOADS / path).read_text())


def deliver(payload: Any, headers: dict[str, str] | None = None) -> ParseResult:
    delivery = Delivery(
        endpoint="/events/scans",
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(payload).encode(),
        received_at=RECEIVED,
    )
    return parse_scan(delivery, payload)


def test_trivy_report_is_routed_to_the_trivy_parser() -> None:
    result = deliver(load("trivy/image_report.json"))

    assert {e.source for e in result.events} == {"trivy"}


def test_grype_report_is_routed_to_the_grype_parser() -> None:
    result = deliver(load("grype/platform_manifest_report.json"))

    assert {e.source for e in result.events} == {"grype"}


def test_github_event_header_routes_to_the_alert_parser() -> None:
    headers = {"x-github-event": "code_scanning_alert", "x-github-delivery": "d-1"}

    result = deliver(load("github_alerts/code_scanning_created_null_state.json"), headers)

    assert [e.source for e in result.events] == ["code-scanning"]


def test_github_header_wins_over_the_body_shape() -> None:
    headers = {"x-github-event": "dependabot_alert", "x-github-delivery": "d-2"}

    with pytest.raises(InputError) as caught:
        deliver(load("trivy/image_report.json"), headers)

    # Read as a GitHub alert, a Trivy report lacks the alert envelope.
    assert caught.value.field == "action"


def test_trivy_report_with_wrong_schema_keeps_the_trivy_error() -> None:
    report = load("trivy/image_report.json")
    report["SchemaVersion"] = 1

    with pytest.raises(InputError) as caught:
        deliver(report)

    assert (caught.value.code, caught.value.field) == ("unsupported_version", "SchemaVersion")


@pytest.mark.parametrize(
    "payload",
    [
        {"bomFormat": "CycloneDX", "specVersion": "1.5"},
        {"matches": []},
        [{"SchemaVersion": 2}],
        "report",
    ],
)
def test_unknown_format_is_rejected_listing_accepted_formats(payload: Any) -> None:
    with pytest.raises(InputError) as caught:
        deliver(payload)

    error = caught.value
    assert (error.status, error.code, error.field) == (422, "unknown_format", "$")
    assert "Trivy" in error.message and "Grype" in error.message and "dependabot_alert" in error.message


# --- robustness --------------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def mutations(draw: st.DrawFn, document: Any) -> Any:
    """The document with one subtree, chosen at random, replaced by arbitrary JSON or removed."""
    root = copy.deepcopy(document)
    parent: Any = None
    key: Any = None
    node = root
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    if parent is None:
        return draw(JSON_VALUES)
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(JSON_VALUES)
    return root


@pytest.mark.parametrize(
    ("fixture", "event"),
    [
        ("trivy/image_report.json", None),
        ("grype/platform_manifest_report.json", None),
        ("github_alerts/dependabot_created.json", "dependabot_alert"),
        ("github_alerts/dependabot_fixed.json", "dependabot_alert"),
        ("github_alerts/code_scanning_created_null_state.json", "code_scanning_alert"),
        ("github_alerts/code_scanning_fixed_legacy_instances.json", "code_scanning_alert"),
    ],
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mutation_is_parsed_or_refused_with_an_input_error(
    fixture: str, event: str | None, data: st.DataObject
) -> None:
    payload = data.draw(mutations(load(fixture)))
    headers = {"x-github-event": event, "x-github-delivery": "d-fuzz"} if event else {}
    try:
        result = deliver(payload, headers)
    except InputError as error:
        assert error.status in (400, 422)
        assert error.field
    else:
        assert isinstance(result, ParseResult)
