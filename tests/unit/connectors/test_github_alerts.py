from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.github_alerts import parse_github_alert
from linked_artifacts.events import AlertBody, ArtifactEvent, repo_key

PAYLOADS = Path(__file__).parent / "payloads" / "github_alerts"
RECEIVED = datetime(2026, 5, 5, 10, 30, tzinfo=UTC)
DELIVERY_ID = "0b7a1c2e-cc78-11e3-81ab-4c9367dc0958"


def load(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return payload


def deliver(payload: Any, *, event: str | None, delivery_id: str | None = DELIVERY_ID) -> ParseResult:
    headers = {"user-agent": "GitHub-Hookshot/7e3b1a2", "content-type": "application/json"}
    if event is not None:
        headers["x-github-event"] = event
    if delivery_id is not None:
        headers["x-github-delivery"] = delivery_id
    delivery = Delivery(
        endpoint="/events/scans", headers=headers, body=json.dumps(payload).encode(), received_at=RECEIVED
    )
    return parse_github_alert(delivery, payload)


def dependabot(name: str) -> tuple[ArtifactEvent, AlertBody]:
    [event] = deliver(load(name), event="dependabot_alert").events
    assert event.alert is not None
    return event, event.alert


def code_scanning(name: str) -> tuple[ArtifactEvent, AlertBody]:
    [event] = deliver(load(name), event="code_scanning_alert").events
    assert event.alert is not None
    return event, event.alert


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


# --- dependabot --------------------------------------------------------------------------------------------


def test_dependabot_created_is_an_open_repository_alert_keyed_by_repository() -> None:
    event, alert = dependabot("dependabot_created.json")

    assert event.kind == "alert"
    assert event.source == "dependabot"
    assert event.key == repo_key("octo-org/octo-repo")
    assert event.digest is None
    assert event.delivery_id == DELIVERY_ID
    assert event.event_time == datetime(2022, 6, 15, 7, 43, 3, tzinfo=UTC)
    assert (alert.scope, alert.repository, alert.state, alert.tool) == (
        "repository",
        "octo-org/octo-repo",
        "open",
        "dependabot",
    )


def test_dependabot_string_percentile_and_highest_cvss_are_parsed() -> None:
    _, alert = dependabot("dependabot_created.json")

    assert alert.epss == 0.00045
    assert alert.epss_percentile == pytest.approx(0.16001)
    assert alert.cvss_score == 8.7
    assert alert.cvss_vector is not None and alert.cvss_vector.startswith("CVSS:4.0/")


def test_dependabot_identity_prefers_the_cve_and_keeps_the_ghsa_as_alias() -> None:
    _, alert = dependabot("dependabot_created.json")

    assert alert.vulnerability_id == "CVE-2018-6188"
    assert alert.aliases == ["GHSA-rf4j-j272-fj86"]
    assert alert.severity == "high"
    assert alert.package_name == "django"
    assert alert.purl == "pkg:pypi/django"
    assert alert.fixed_version == "2.0.2"
    assert alert.title is not None and alert.title.startswith("Django allows")
    assert alert.url == "https://github.com/octo-org/octo-repo/security/dependabot/2"


def test_dependabot_fixed_uses_fixed_at_and_unscored_cvss_is_none() -> None:
    event, alert = dependabot("dependabot_fixed.json")

    assert alert.state == "fixed"
    assert event.event_time == datetime(2023, 11, 2, 9, 14, 58, tzinfo=UTC)
    assert alert.cvss_score is None
    assert alert.cvss_vector is None
    assert (alert.epss, alert.epss_percentile) == (None, None)
    assert alert.vulnerability_id == "GHSA-67hx-6x53-jw92"
    assert alert.aliases == []
    assert alert.purl == "pkg:npm/%40babel/traverse"
    # Repository keys are case-insensitive; the repository keeps GitHub's spelling.
    assert event.key == "repo:acme/storefront"
    assert alert.repository == "acme/Storefront"


def test_dependabot_dismissed_uses_dismissed_at() -> None:
    event, alert = dependabot("dependabot_dismissed.json")

    assert alert.state == "dismissed"
    assert event.event_time == datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
    assert alert.cvss_score == 10.0
    assert (alert.epss, alert.epss_percentile) == (0.94358, 0.99961)
    assert alert.purl == "pkg:maven/org.apache.logging.log4j/log4j-core"


def test_legacy_cvss_is_used_when_cvss_severities_are_absent() -> None:
    payload = load("dependabot_created.json")
    payload["alert"]["security_advisory"]["cvss_severities"] = None

    [event] = deliver(payload, event="dependabot_alert").events

    assert event.alert is not None
    assert event.alert.cvss_score == 7.5
    assert event.alert.cvss_vector == "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"


def test_auto_dismissed_state_is_dismissed() -> None:
    payload = load("dependabot_dismissed.json")
    payload["action"] = "auto_dismissed"
    payload["alert"]["state"] = "auto_dismissed"
    payload["alert"]["auto_dismissed_at"] = "2026-04-02T00:00:00Z"

    [event] = deliver(payload, event="dependabot_alert").events

    assert event.alert is not None
    assert event.alert.state == "dismissed"
    assert event.event_time == datetime(2026, 4, 2, tzinfo=UTC)


def test_every_action_on_one_alert_updates_the_same_alert_key() -> None:
    created = load("dependabot_dismissed.json")
    created["action"] = "created"
    created["alert"]["state"] = "open"

    _, dismissed = dependabot("dependabot_dismissed.json")
    [event] = deliver(created, event="dependabot_alert", delivery_id="other-delivery").events

    assert event.alert is not None
    assert event.alert.alert_key == dismissed.alert_key


def test_redelivery_has_the_same_event_id_and_a_new_delivery_another() -> None:
    first = deliver(load("dependabot_created.json"), event="dependabot_alert")
    again = deliver(load("dependabot_created.json"), event="dependabot_alert")
    other = deliver(load("dependabot_created.json"), event="dependabot_alert", delivery_id="another")

    assert first.events[0].event_id == again.events[0].event_id
    assert first.events[0].event_id != other.events[0].event_id


# --- code scanning -----------------------------------------------------------------------------------------


def test_code_scanning_created_with_null_state_is_open() -> None:
    event, alert = code_scanning("code_scanning_created_null_state.json")

    assert event.source == "code-scanning"
    assert event.key == repo_key("octo-org/octo-repo")
    assert event.digest is None
    assert alert.state == "open"
    assert alert.vulnerability_id == "py/sql-injection"
    assert alert.severity == "high"  # SARIF level "error"
    assert alert.tool == "CodeQL"
    assert (alert.cvss_score, alert.epss) == (None, None)
    assert alert.title == "SQL query built from user-controlled sources"
    assert event.event_time == datetime(2026, 2, 11, 3, 10, 43, tzinfo=UTC)


def test_code_scanning_fixed_with_null_state_and_legacy_instances_is_fixed() -> None:
    event, alert = code_scanning("code_scanning_fixed_legacy_instances.json")

    assert alert.state == "fixed"
    assert alert.severity == "medium"  # security_severity_level wins over the SARIF level
    assert event.event_time == datetime(2021, 4, 2, 8, 30, tzinfo=UTC)


def test_code_scanning_closed_by_user_is_dismissed_at_dismissed_at() -> None:
    event, alert = code_scanning("code_scanning_closed_by_user.json")

    assert alert.state == "dismissed"
    assert event.event_time == datetime(2026, 1, 20, 16, 0, tzinfo=UTC)
    assert alert.severity == "low"  # SARIF level "note"
    assert alert.tool == "Trivy"
    assert alert.title == "requests: session verify bypass"


def test_code_scanning_null_state_falls_back_to_the_latest_instance_state() -> None:
    payload = load("code_scanning_created_null_state.json")
    payload["action"] = "appeared_in_branch"
    payload["alert"]["most_recent_instance"]["state"] = "fixed"

    [event] = deliver(payload, event="code_scanning_alert").events

    assert event.alert is not None
    assert event.alert.state == "fixed"


@pytest.mark.parametrize(
    ("level", "severity"), [("warning", "medium"), ("note", "low"), ("none", "unknown"), (None, "unknown")]
)
def test_sarif_levels_map_to_severities(level: str | None, severity: str) -> None:
    payload = load("code_scanning_created_null_state.json")
    payload["alert"]["rule"]["severity"] = level

    [event] = deliver(payload, event="code_scanning_alert").events

    assert event.alert is not None
    assert event.alert.severity == severity


def test_code_scanning_and_dependabot_alerts_with_one_number_differ() -> None:
    _, scanning = code_scanning("code_scanning_created_null_state.json")
    payload = load("dependabot_created.json")
    payload["alert"]["number"] = 10
    [event] = deliver(payload, event="dependabot_alert").events

    assert event.alert is not None
    assert event.alert.alert_key != scanning.alert_key


# --- refusals ----------------------------------------------------------------------------------------------


def test_ping_is_acknowledged_and_ignored() -> None:
    result = deliver({"zen": "Keep it logically awesome."}, event="ping")

    assert result.ignored
    assert result.events == ()


def test_missing_event_header_is_a_400() -> None:
    error = expect_error(load("dependabot_created.json"), event=None)

    assert (error.status, error.code, error.field) == (400, "missing_header", "X-GitHub-Event")


def test_missing_delivery_header_is_a_400() -> None:
    error = expect_error(load("dependabot_created.json"), event="dependabot_alert", delivery_id=None)

    assert (error.status, error.code, error.field) == (400, "missing_header", "X-GitHub-Delivery")


def test_other_github_event_is_unsupported() -> None:
    error = expect_error(load("dependabot_created.json"), event="secret_scanning_alert")

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "X-GitHub-Event")


def test_unknown_action_is_unsupported() -> None:
    payload = load("dependabot_created.json")
    payload["action"] = "assignees_changed"

    error = expect_error(payload, event="dependabot_alert")

    assert (error.status, error.code, error.field) == (422, "unsupported_event", "action")


def test_unparseable_percentile_is_rejected_naming_it() -> None:
    payload = load("dependabot_created.json")
    payload["alert"]["security_advisory"]["epss"]["percentile"] = "high"

    error = expect_error(payload, event="dependabot_alert")

    assert (error.status, error.field) == (422, "alert.security_advisory.epss.percentile")


def test_percentile_out_of_range_is_rejected() -> None:
    payload = load("dependabot_created.json")
    payload["alert"]["security_advisory"]["epss"]["percentile"] = 16.0

    error = expect_error(payload, event="dependabot_alert")

    assert (error.status, error.field) == (422, "alert.security_advisory.epss.percentile")


def test_unknown_dependabot_state_is_rejected() -> None:
    payload = load("dependabot_created.json")
    payload["alert"]["state"] = "snoozed"

    error = expect_error(payload, event="dependabot_alert")

    assert (error.status, error.field) == (422, "alert.state")


def test_missing_repository_is_rejected() -> None:
    payload = load("code_scanning_created_null_state.json")
    del payload["repository"]

    error = expect_error(payload, event="code_scanning_alert")

    assert (error.status, error.field) == (422, "repository.full_name")


def test_missing_alert_number_is_rejected() -> None:
    payload = load("code_scanning_created_null_state.json")
    payload["alert"]["number"] = "10"

    error = expect_error(payload, event="code_scanning_alert")

    assert (error.status, error.field) == (422, "alert.number")


def test_code_scanning_without_rule_id_is_rejected() -> None:
    payload = load("code_scanning_created_null_state.json")
    del payload["alert"]["rule"]["id"]

    error = expect_error(payload, event="code_scanning_alert")

    assert (error.status, error.field) == (422, "alert.rule.id")


def test_body_that_is_not_an_object_is_a_400() -> None:
    error = expect_error([1, 2], event="dependabot_alert")

    assert (error.status, error.field) == (400, "$")
