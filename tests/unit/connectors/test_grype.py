from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.grype import parse_grype
from linked_artifacts.events import AlertBody, ArtifactEvent

PAYLOADS = Path(__file__).parent / "payloads" / "grype"
RECEIVED = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
INDEX = "sha256:6c604694b2f96e1f80960c53010daa6b3510de4157463dcfbb9fa7a5162d0c1d"
PLATFORM = "sha256:88106af13a4f0530cfdd1c471dd0bf8b20b0f2ba0f319ea4af9d40acc2467287"
OTHER = "sha256:720b10ee32f9604458c948ae0b5b20171350de14efba9edafa1280fe5272ae7d"


def load() -> dict[str, Any]:
    report: dict[str, Any] = json.loads((PAYLOADS / "platform_manifest_report.json").read_text())
    return report


def deliver(
    payload: Any, *, query: dict[str, str] | None = None, received: datetime = RECEIVED
) -> ParseResult:
    delivery = Delivery(
        endpoint="/events/scans",
        headers={"content-type": "application/json"},
        body=json.dumps(payload).encode(),
        received_at=received,
        query=query or {},
    )
    return parse_grype(delivery, payload)


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


def alerts(result: ParseResult) -> dict[str, AlertBody]:
    return {e.alert.vulnerability_id: e.alert for e in result.events if e.alert is not None}


def links(result: ParseResult) -> list[ArtifactEvent]:
    return [e for e in result.events if e.kind == "link"]


def test_each_match_becomes_an_open_alert_on_the_platform_manifest() -> None:
    result = deliver(load())

    alert_events = [e for e in result.events if e.kind == "alert"]
    assert len(alert_events) == 3
    for event in alert_events:
        assert event.key == event.digest == PLATFORM
        assert event.source == "grype"
        assert event.event_time == datetime(2026, 3, 2, 10, 11, 12, 345000, tzinfo=UTC)
        assert event.alert is not None
        assert (event.alert.scope, event.alert.state, event.alert.tool) == ("digest", "open", "grype")


def test_index_in_repo_digests_yields_links_under_both_digests() -> None:
    result = deliver(load())

    pairs = {
        (e.key, e.link.index_digest, e.link.platform_digest, e.link.platform) for e in links(result) if e.link
    }
    assert pairs == {
        (INDEX, INDEX, PLATFORM, "linux/amd64"),
        (PLATFORM, INDEX, PLATFORM, "linux/amd64"),
    }
    assert all(e.digest == e.key for e in links(result))


def test_links_have_the_same_ids_in_every_scan_that_shows_them() -> None:
    later = load()
    later["descriptor"]["timestamp"] = "2026-03-09T00:00:00Z"

    assert {e.event_id for e in links(deliver(load()))} == {e.event_id for e in links(deliver(later))}


def test_single_platform_image_yields_no_links() -> None:
    report = load()
    report["source"]["target"]["repoDigests"] = [f"ghcr.io/acme/payments-api@{PLATFORM}"]

    assert links(deliver(report)) == []


def test_cvss_and_epss_come_from_the_highest_across_related_records() -> None:
    finding = alerts(deliver(load()))["GHSA-9wx4-h78v-vm56"]

    assert finding.cvss_score == 5.6
    assert finding.cvss_vector == "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N"
    assert finding.epss == 0.00051
    assert finding.epss_percentile == 0.18877
    assert finding.aliases == ["CVE-2024-35195"]
    assert finding.severity == "medium"
    assert finding.fixed_version == "2.32.0"
    assert (finding.package_name, finding.package_version, finding.purl) == (
        "requests",
        "2.31.0",
        "pkg:pypi/requests@2.31.0",
    )
    assert (
        finding.title
        == "Requests `Session` object does not verify requests after making first request with verify=False"
    )
    assert finding.url == "https://github.com/advisories/GHSA-9wx4-h78v-vm56"


def test_upper_case_severity_and_several_cvss_versions_pick_the_highest() -> None:
    finding = alerts(deliver(load()))["CVE-2023-4911"]

    assert finding.severity == "critical"
    assert finding.cvss_score == 8.5
    assert finding.cvss_vector is not None and finding.cvss_vector.startswith("CVSS:4.0/")
    assert (finding.epss, finding.epss_percentile) == (0.71234, 0.98011)
    assert finding.fixed_version == "2.36-9+deb12u3"


def test_negligible_severity_is_kept_and_empty_purl_is_none() -> None:
    finding = alerts(deliver(load()))["CVE-2005-2541"]

    assert finding.severity == "negligible"
    assert finding.purl is None
    assert finding.cvss_score is None
    assert finding.epss is None
    assert finding.fixed_version is None


def test_redelivered_report_has_the_same_event_ids_and_alert_keys_survive_rescans() -> None:
    first = deliver(load())
    again = deliver(load(), received=datetime(2026, 3, 4, tzinfo=UTC))
    later = load()
    later["descriptor"]["timestamp"] = "2026-03-09T00:00:00Z"
    rescan = deliver(later)

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert {a.alert_key for a in alerts(first).values()} == {a.alert_key for a in alerts(rescan).values()}
    assert len({a.alert_key for a in alerts(first).values()}) == 3


def test_digest_query_parameter_names_the_subject_but_links_stay() -> None:
    result = deliver(load(), query={"digest": OTHER})

    assert {e.key for e in result.events if e.kind == "alert"} == {OTHER}
    assert len(links(result)) == 2


def test_without_manifest_digest_the_repo_digest_is_the_subject_and_no_link_is_made() -> None:
    report = load()
    del report["source"]["target"]["manifestDigest"]

    result = deliver(report)

    assert {e.key for e in result.events} == {INDEX}
    assert links(result) == []


def test_report_without_matches_gives_links_and_a_note() -> None:
    report = load()
    report["matches"] = []

    result = deliver(report)

    assert [e.kind for e in result.events] == ["link", "link"]
    assert result.note is not None and PLATFORM in result.note


# --- malformed input ---------------------------------------------------------------------------------------


def test_directory_scan_without_digest_is_rejected_with_a_hint() -> None:
    report = load()
    report["source"] = {"type": "directory", "target": "/src"}

    error = expect_error(report)

    assert (error.status, error.field) == (422, "source.target.manifestDigest")
    assert "?digest=" in error.message


def test_directory_scan_with_digest_query_parameter_is_accepted() -> None:
    report = load()
    report["source"] = {"type": "directory", "target": "/src"}

    result = deliver(report, query={"digest": OTHER})

    assert {e.key for e in result.events} == {OTHER}


def test_invalid_manifest_digest_is_rejected_naming_it() -> None:
    report = load()
    report["source"]["target"]["manifestDigest"] = "sha512:abc"

    error = expect_error(report)

    assert (error.status, error.field) == (422, "source.target.manifestDigest")


def test_match_without_vulnerability_id_is_rejected_with_its_path() -> None:
    report = load()
    del report["matches"][2]["vulnerability"]["id"]

    error = expect_error(report)

    assert (error.status, error.field) == (422, "matches[2].vulnerability.id")


def test_match_without_artifact_is_rejected() -> None:
    report = load()
    del report["matches"][0]["artifact"]

    error = expect_error(report)

    assert (error.status, error.field) == (422, "matches[0].artifact")


def test_matches_that_are_not_an_array_are_rejected() -> None:
    report = load()
    report["matches"] = {"x": 1}

    error = expect_error(report)

    assert (error.status, error.field) == (422, "matches")


def test_repo_digest_without_at_sign_is_rejected() -> None:
    report = load()
    report["source"]["target"]["repoDigests"] = ["ghcr.io/acme/payments-api:1.4.2"]

    error = expect_error(report)

    assert (error.status, error.field) == (422, "source.target.repoDigests[0]")
