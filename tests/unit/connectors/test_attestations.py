from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.attestations import parse_attestation

PAYLOADS = Path(__file__).parent / "payloads" / "attestations"
RECEIVED = datetime(2026, 5, 5, 10, 25, tzinfo=UTC)
INDEX = "sha256:1bc04b5291c26a46d918139138b992d2de976d6851d0893b0476b85bfbdfc6e6"
AMD64 = "sha256:5861314d7fccb39c2192173240eab44fa35ca66426201ca2acd0630a6258dd51"
ARM64 = "sha256:f69162950f235e3cdbbad33f1f912d1a504be90d8a37d002c735d6f3e3882265"
INTEGRATED = 1777976334  # 2026-05-05T10:18:54Z


def statement_bytes(name: str = "statement_slsa_v1.json") -> bytes:
    return (PAYLOADS / name).read_bytes()


def statement(name: str = "statement_slsa_v1.json") -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(statement_bytes(name))
    return loaded


def bundle(
    payload: bytes | None = None,
    *,
    media_type: str = "application/vnd.dev.sigstore.bundle.v0.3+json",
    integrated_time: str | None = str(INTEGRATED),
) -> dict[str, Any]:
    tlog: list[dict[str, Any]] = []
    if integrated_time is not None:
        tlog.append(
            {
                "logIndex": "188273645",
                "logId": {"keyId": "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0="},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                "integratedTime": integrated_time,
                "inclusionPromise": {"signedEntryTimestamp": "MEUCIQD3kZ0vX1c2p7mZ0y1V5x9l4Gm3m1rQ=="},
                "canonicalizedBody": "eyJhcGlWZXJzaW9uIjoiMC4wLjEiLCJraW5kIjoiZHNzZSJ9",
            }
        )
    return {
        "mediaType": media_type,
        "verificationMaterial": {
            "certificate": {"rawBytes": "MIIGtzCCBj2gAwIBAgIUXr7f2vq3mVw0Kd4Q9n1c3s5TJ8gwCgYIKoZIzj0EAwMw"},
            "tlogEntries": tlog,
            "timestampVerificationData": {"rfc3161Timestamps": []},
        },
        "dsseEnvelope": {
            "payload": base64.b64encode(payload if payload is not None else statement_bytes()).decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": "MEQCIFs1cw7pP3f0Yy0Vq3x9R2Yl3gT0b4bWvP0m4bqz5aS1AiB8", "keyid": ""}],
        },
    }


def submit(payload: Any, *, body: bytes | None = None) -> ParseResult:
    raw = body if body is not None else json.dumps(payload).encode()
    delivery = Delivery(
        endpoint="/v1/attestations",
        headers={"content-type": "application/json"},
        body=raw,
        received_at=RECEIVED,
    )
    return parse_attestation(delivery, payload)


def expect_error(payload: Any) -> InputError:
    with pytest.raises(InputError) as caught:
        submit(payload)
    return caught.value


# --- statements -----------------------------------------------------------------------------------------


def test_statement_becomes_build_event_with_provenance_fields() -> None:
    raw = statement_bytes()

    result = submit(json.loads(raw), body=raw)

    (event,) = result.events
    assert (event.kind, event.source, event.key, event.digest) == ("build", "attestation", INDEX, INDEX)
    build = event.build
    assert build is not None
    assert build.predicate_type == "https://slsa.dev/provenance/v1"
    assert (
        build.builder_id
        == "https://github.com/acme/payments-api/.github/workflows/release.yml@refs/heads/main"
    )
    assert build.build_type == "https://actions.github.io/buildtypes/workflow/v1"
    assert build.invocation_id == "https://github.com/acme/payments-api/actions/runs/12345678901/attempts/2"
    assert (build.workflow_run_id, build.run_attempt) == (12345678901, 2)
    assert build.commit == "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    assert build.ref == "refs/heads/main"
    assert build.repository == "acme/payments-api"
    assert build.workflow_path == ".github/workflows/release.yml"
    assert build.subject_name == "ghcr.io/acme/payments-api"


def test_attestation_sha256_hashes_the_original_bytes_and_keeps_them() -> None:
    # Deliberately odd whitespace: re-serialising would change the hash.
    raw = b'{ "_type" :"https://in-toto.io/Statement/v1",\n' + statement_bytes()[1:]

    result = submit(json.loads(raw), body=raw)

    assert result.attestations == (raw,)
    assert result.events[0].build is not None
    assert result.events[0].build.attestation_sha256 == hashlib.sha256(raw).hexdigest()
    assert result.events[0].delivery_id == hashlib.sha256(raw).hexdigest()


def test_bare_statement_event_time_is_the_receive_time() -> None:
    event = submit(statement()).events[0]

    assert event.event_time == event.ingest_time == RECEIVED


def test_one_build_event_per_distinct_subject_digest() -> None:
    result = submit(statement("statement_multi_subject.json"))

    assert [e.digest for e in result.events] == [AMD64, ARM64]
    assert [e.build.subject_name for e in result.events if e.build] == [
        "payments-cli_linux_amd64.tar.gz",
        "payments-cli_linux_arm64.tar.gz",
    ]
    assert len({e.event_id for e in result.events}) == 2
    assert all(
        e.build is not None and e.build.commit == "9d4c2e1f0a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"
        for e in result.events
    )


def test_resubmitting_the_same_bytes_gives_identical_event_ids() -> None:
    raw = json.dumps(bundle()).encode()

    first = submit(json.loads(raw), body=raw)
    again = submit(json.loads(raw), body=raw)

    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]


def test_invocation_id_outside_github_actions_leaves_run_fields_empty() -> None:
    payload = statement()
    payload["predicate"]["runDetails"]["metadata"]["invocationId"] = "https://ci.acme.internal/builds/8812"

    build = submit(payload).events[0].build

    assert build is not None
    assert (build.workflow_run_id, build.run_attempt) == (None, None)


# --- Sigstore bundles and DSSE envelopes ----------------------------------------------------------------


def test_sigstore_bundle_is_unwrapped_and_timed_by_its_tlog_entry() -> None:
    payload = bundle()
    raw = json.dumps(payload).encode()

    result = submit(payload, body=raw)

    (event,) = result.events
    assert event.digest == INDEX
    assert event.event_time == datetime.fromtimestamp(INTEGRATED, tz=UTC)
    assert event.build is not None
    assert event.build.attestation_sha256 == hashlib.sha256(raw).hexdigest()
    assert event.build.commit == "3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    assert result.attestations == (raw,)


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
    ],
)
def test_older_bundle_media_types_are_accepted(media_type: str) -> None:
    assert submit(bundle(media_type=media_type)).events[0].digest == INDEX


def test_bundle_without_tlog_entry_uses_receive_time() -> None:
    event = submit(bundle(integrated_time=None)).events[0]

    assert event.event_time == RECEIVED


def test_url_safe_unpadded_base64_payload_is_accepted() -> None:
    payload = bundle()
    payload["dsseEnvelope"]["payload"] = base64.urlsafe_b64encode(statement_bytes()).decode().rstrip("=")

    assert submit(payload).events[0].digest == INDEX


def test_bare_dsse_envelope_is_accepted() -> None:
    envelope = bundle()["dsseEnvelope"]

    assert submit(envelope).events[0].digest == INDEX


# --- rejected input -------------------------------------------------------------------------------------


def test_unsupported_bundle_media_type_is_unsupported_version() -> None:
    error = expect_error(bundle(media_type="application/vnd.dev.sigstore.bundle.v0.9+json"))

    assert (error.status, error.code, error.field) == (422, "unsupported_version", "mediaType")


def test_bundle_without_dsse_envelope_is_rejected() -> None:
    payload = bundle()
    del payload["dsseEnvelope"]
    payload["messageSignature"] = {
        "messageDigest": {"algorithm": "SHA2_256", "digest": "AAAA"},
        "signature": "MEUC",
    }

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "dsseEnvelope")


def test_bad_base64_payload_is_rejected_naming_the_payload() -> None:
    payload = bundle()
    payload["dsseEnvelope"]["payload"] = "eyJfdHlwZSI6!!!not base64"

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "dsseEnvelope.payload")


def test_base64_of_non_json_is_rejected_naming_the_payload() -> None:
    error = expect_error(bundle(b"\x89PNG\r\n\x1a\n"))

    assert (error.status, error.field) == (422, "dsseEnvelope.payload")


def test_non_in_toto_payload_type_is_unsupported_version() -> None:
    payload = bundle()
    payload["dsseEnvelope"]["payloadType"] = "application/vnd.cyclonedx+json"

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "unsupported_version", "dsseEnvelope.payloadType")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("_type", "https://in-toto.io/Statement/v0.1"),
        ("predicateType", "https://slsa.dev/provenance/v0.2"),
        ("predicateType", "https://spdx.dev/Document/v2.3"),
    ],
)
def test_unsupported_statement_or_predicate_version_is_rejected(field: str, value: str) -> None:
    payload = statement()
    payload[field] = value

    error = expect_error(payload)

    assert (error.status, error.code, error.field) == (422, "unsupported_version", field)


def test_unsupported_predicate_inside_a_bundle_says_where_the_statement_came_from() -> None:
    inner = statement()
    inner["predicateType"] = "https://slsa.dev/provenance/v0.2"

    error = expect_error(bundle(json.dumps(inner).encode()))

    assert (error.code, error.field) == ("unsupported_version", "predicateType")
    assert "dsseEnvelope.payload" in error.message


def test_subject_without_sha256_is_rejected_naming_its_digest() -> None:
    payload = statement("statement_multi_subject.json")
    payload["subject"][1]["digest"] = {"sha512": "ab" * 64}

    error = expect_error(payload)

    assert (error.status, error.field) == (422, "subject[1].digest")


def test_subject_with_malformed_sha256_is_an_invalid_digest() -> None:
    payload = statement()
    payload["subject"][0]["digest"]["sha256"] = "1bc04b52"

    error = expect_error(payload)

    assert (error.code, error.field) == ("invalid_digest", "subject[0].digest.sha256")


def test_empty_subject_list_is_rejected() -> None:
    payload = statement()
    payload["subject"] = []

    assert expect_error(payload).field == "subject"


def test_missing_builder_id_is_rejected() -> None:
    payload = statement()
    del payload["predicate"]["runDetails"]["builder"]

    assert expect_error(payload).field == "predicate.runDetails.builder.id"


def test_wrongly_typed_workflow_ref_is_rejected_naming_the_field() -> None:
    payload = statement()
    payload["predicate"]["buildDefinition"]["externalParameters"]["workflow"]["ref"] = ["refs/heads/main"]

    error = expect_error(payload)

    assert error.field == "predicate.buildDefinition.externalParameters.workflow.ref"


def test_body_that_is_not_an_object_is_rejected() -> None:
    assert expect_error("eyJfdHlwZSI6").field == "body"


def test_decoded_statement_nested_too_deep_is_refused_naming_the_payload() -> None:
    error = expect_error(bundle(b'{"_type": ' + b"[" * 100 + b"]" * 100 + b"}"))

    assert (error.status, error.code, error.field) == (422, "too_deep", "dsseEnvelope.payload")


def test_decoded_statement_with_duplicate_keys_is_refused() -> None:
    error = expect_error(bundle(b'{"_type": "a", "_type": "https://in-toto.io/Statement/v1"}'))

    assert (error.code, error.field) == ("duplicate_key", "dsseEnvelope.payload")
