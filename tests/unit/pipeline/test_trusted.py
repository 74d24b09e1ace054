"""``trusted`` builds the model that validation would build from valid values, defaults included, and
refuses what validation would refuse for a missing or unknown field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from linked_artifacts.events import ArtifactEvent
from pipeline.merge import event_delta
from pipeline.state import AlertRecord, LinkedArtifactState, Stamp, canonical_json, trusted
from tests.unit.pipeline.factory import alert, deployment

AT = datetime(2026, 1, 1, tzinfo=UTC)
FIELDS = {
    "alert_key": "grype:CVE-2026-1",
    "scope": "digest",
    "vulnerability_id": "CVE-2026-1",
    "severity": "high",
    "state": "open",
    "tool": "grype",
    "first_seen": AT,
    "last_seen": AT,
    "cvss_score": 7.5,
}


def test_equals_the_validated_model_with_defaults_filled() -> None:
    validated = AlertRecord(**FIELDS)
    built = trusted(AlertRecord, **dict(reversed(FIELDS.items())))
    assert built == validated
    assert built.model_dump() == validated.model_dump()
    assert canonical_json(built) == canonical_json(validated)
    assert built.aliases == [] and built.sources == [] and built.purl is None
    assert built.aliases is not trusted(AlertRecord, **FIELDS).aliases  # a default list is never shared
    assert built.model_copy(update={"title": "t"}).title == "t"
    assert hash(trusted(Stamp, at=AT, rank=1, event_id="e")) == hash(Stamp(at=AT, rank=1, event_id="e"))


def test_a_missing_or_unknown_field_is_refused() -> None:
    missing = {name: value for name, value in FIELDS.items() if name != "severity"}
    with pytest.raises(TypeError, match=r"no value for \[.severity.\]"):
        trusted(AlertRecord, **missing)
    with pytest.raises(TypeError, match="has no field"):
        trusted(AlertRecord, **FIELDS, severty="high")


@pytest.mark.parametrize(
    "event",
    [
        alert("e1", "sha256:" + "a" * 64, 1, cvss=9.8, epss=0.2),
        deployment("e2", "sha256:" + "b" * 64, 2, risks=["internet-exposed"]),
    ],
    ids=lambda e: e.kind,
)
def test_an_event_delta_validates_as_it_is(event: ArtifactEvent) -> None:
    delta = event_delta(event)
    assert LinkedArtifactState.model_validate(delta.model_dump()) == delta
