from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.trivy import parse_trivy
from linked_artifacts.events import AlertBody

PAYLOADS = Path(__file__).parent / "payloads" / "trivy"
RECEIVED = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
GHCR_DIGEST = "sha256:720b10ee32f9604458c948ae0b5b20171350de14efba9edafa1280fe5272ae7d"
MIRROR_DIGEST = "sha256:c374eea599bb3c50ed4432ef57aee1263cdc3c83d1c1a3c4d7e19eef1af8439b"
PLATFORM = "sha256:88106af13a4f0530cfdd1c471dd0bf8b20b0f2ba0f319ea4af9d40acc2467287"


def load() -> dict[str, Any]:
    report: dict[str, Any] = json.loads((PAYLOADS / "image_report.json").read_text())
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
    return parse_trivy(delivery, payload)


def expect_error(payload: Any, **kwargs: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        deliver(payload, **kwargs)
    return caught.value


def alerts(result: ParseResult) -> dict[tuple[str, str | None], AlertBody]:
    found: dict[tuple[str, str | None], AlertBody] = {}
    for event in result.events:
        assert event.alert is not None
        found[(event.alert.vulnerability_id, event.alert.package_name)] = event.alert
    return found


def test_each_vulnerability_becomes_an_open_digest_alert() -> None:
    result = deliver(load())

    assert set(alerts(result)) == {
        ("CVE-2024-45490", "libexpat1"),
        ("CVE-2023-52425", "libexpat1"),
        ("CVE-2011-3374", "apt"),
        ("CVE-2024-35195", "requests"),
        ("GHSA-xxxx-legacy-0001", "legacy-lib"),
    }
    for event in result.events:
        assert event.kind == "alert"
        assert event.source == "trivy"
        assert event.event_time == datetime(2026, 3, 2, 10, 11, 12, 345000, tzinfo=UTC)
        assert event.alert is not None
        assert event.alert.scope == "digest"
        assert event.alert.state == "open"
        assert event.alert.tool == "trivy"
        assert event.alert.epss is None


def test_subject_is_the_repo_digest_matching_the_scanned_reference() -> None:
    result = deliver(load())

    assert {(e.key, e.digest) for e in result.events} == {(GHCR_DIGEST, GHCR_DIGEST)}


def test_first_repo_digest_is_the_subject_when_none_matches_the_reference() -> None:
    report = load()
    report["Metadata"]["Reference"] = "other.example/x:1"
    report["ArtifactName"] = "other.example/x:1"

    assert {e.digest for e in deliver(report).events} == {MIRROR_DIGEST}


def test_digest_query_parameter_wins_over_repo_digests() -> None:
    result = deliver(load(), query={"digest": PLATFORM.removeprefix("sha256:").upper()})

    assert {e.key for e in result.events} == {PLATFORM}


def test_finding_fields_are_normalised() -> None:
    expat = alerts(deliver(load()))[("CVE-2024-45490", "libexpat1")]

    assert expat.severity == "medium"
    assert expat.cvss_score == 9.8
    assert expat.cvss_vector == "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    assert expat.fixed_version == "2.5.0-1+deb12u1"
    assert expat.purl == "pkg:deb/debian/libexpat1@2.5.0-1?arch=amd64&distro=debian-12.8"
    assert expat.package_version == "2.5.0-1"
    assert expat.aliases == ["DSA-5770-1"]
    assert expat.title == "libexpat: Negative Length Parsing Vulnerability in libexpat"
    assert expat.url == "https://avd.aquasec.com/nvd/cve-2024-45490"


def test_cvss_v4_score_counts_and_v2_scores_are_ignored() -> None:
    finding = alerts(deliver(load()))[("CVE-2023-52425", "libexpat1")]

    assert finding.cvss_score == 8.7
    assert finding.cvss_vector is not None and finding.cvss_vector.startswith("CVSS:4.0/")
    assert finding.severity == "high"
    assert finding.fixed_version is None  # Status "affected": no fix yet, but still an open alert


def test_finding_without_cvss_or_pkgid_has_no_score_and_unknown_severity() -> None:
    legacy = alerts(deliver(load()))[("GHSA-xxxx-legacy-0001", "legacy-lib")]

    assert legacy.cvss_score is None
    assert legacy.cvss_vector is None
    assert legacy.severity == "unknown"
    assert legacy.purl is None


def test_same_package_twice_in_one_target_is_one_finding() -> None:
    result = deliver(load())

    requests = [e for e in result.events if e.alert and e.alert.vulnerability_id == "CVE-2024-35195"]
    assert len(requests) == 1


def test_alert_keys_are_stable_and_distinct_per_finding() -> None:
    first = deliver(load())
    later_scan = load()
    later_scan["CreatedAt"] = "2026-03-09T10:00:00Z"
    second = deliver(later_scan)

    first_keys = [e.alert.alert_key for e in first.events if e.alert]
    assert len(set(first_keys)) == len(first_keys)
    assert first_keys == [e.alert.alert_key for e in second.events if e.alert]
    # A new scan is a new observation of the same findings.
    assert {e.event_id for e in first.events}.isdisjoint({e.event_id for e in second.events})


def test_redelivered_report_has_the_same_event_ids() -> None:
    first = deliver(load())
    again = deliver(load(), received=datetime(2026, 3, 3, tzinfo=UTC))

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_report_without_vulnerabilities_is_ignored_with_a_note() -> None:
    report = load()
    for result in report["Results"]:
        result.pop("Vulnerabilities", None)

    result = deliver(report)

    assert result.events == ()
    assert result.ignored
    assert result.note is not None and GHCR_DIGEST in result.note


# --- malformed input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 3, "2", True])
def test_other_schema_versions_are_unsupported(version: Any) -> None:
    report = load()
    report["SchemaVersion"] = version

    error = expect_error(report)

    assert (error.status, error.code, error.field) == (422, "unsupported_version", "SchemaVersion")


def test_report_without_repo_digests_is_rejected_with_a_digest_hint() -> None:
    report = load()
    del report["Metadata"]["RepoDigests"]

    error = expect_error(report)

    assert (error.status, error.field) == (422, "Metadata.RepoDigests")
    assert "?digest=" in error.message


def test_invalid_digest_query_parameter_is_rejected() -> None:
    error = expect_error(load(), query={"digest": "sha256:123"})

    assert (error.status, error.field) == (422, "?digest")


def test_vulnerability_without_id_is_rejected_with_its_path() -> None:
    report = load()
    del report["Results"][1]["Vulnerabilities"][0]["VulnerabilityID"]

    error = expect_error(report)

    assert (error.status, error.field) == (422, "Results[1].Vulnerabilities[0].VulnerabilityID")


def test_results_that_are_not_an_array_are_rejected() -> None:
    report = load()
    report["Results"] = {"Target": "x"}

    error = expect_error(report)

    assert (error.status, error.field) == (422, "Results")


def test_bad_created_at_is_rejected() -> None:
    report = load()
    report["CreatedAt"] = "soon"

    error = expect_error(report)

    assert (error.status, error.field) == (422, "CreatedAt")


def test_body_that_is_not_an_object_is_a_400() -> None:
    error = expect_error([load()])

    assert (error.status, error.field) == (400, "$")


@pytest.mark.parametrize("created", [10**20, "9999-12-31T23:59:59-01:00"])
def test_out_of_range_created_at_is_a_422_not_a_crash(created: Any) -> None:
    report = load()
    report["CreatedAt"] = created

    error = expect_error(report)

    assert (error.status, error.field) == (422, "CreatedAt")
