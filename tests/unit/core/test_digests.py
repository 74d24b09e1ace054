from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from linked_artifacts.digests import InvalidDigest, image_repository, normalise_digest

HEX = "3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"


@pytest.mark.parametrize(
    "raw",
    [
        HEX,
        HEX.upper(),
        f"sha256:{HEX}",
        f"sha256__{HEX}",
        f"docker-pullable://ghcr.io/acme/payments-api@sha256:{HEX}",
        f"docker://sha256:{HEX}",
        f"ghcr.io/acme/payments-api@sha256:{HEX}",
    ],
)
def test_every_known_digest_form_normalises_to_prefixed_lowercase_hex(raw: str) -> None:
    assert normalise_digest(raw) == f"sha256:{HEX}"


@pytest.mark.parametrize("raw", ["", "latest", "sha256:abc", f"sha512:{HEX}{HEX}", "ghcr.io/acme/app:1.0"])
def test_non_digests_are_refused_with_the_field_named(raw: str) -> None:
    with pytest.raises(InvalidDigest) as err:
        normalise_digest(raw, field="subject[0].digest")
    assert err.value.field == "subject[0].digest"


@given(st.text(max_size=200))
def test_normalisation_never_raises_anything_but_invalid_digest(raw: str) -> None:
    try:
        result = normalise_digest(raw)
    except InvalidDigest:
        return
    assert result.startswith("sha256:") and len(result) == 71 and result == result.lower()


def test_image_repository_drops_tag_and_digest_but_keeps_registry_port() -> None:
    assert image_repository(f"ghcr.io/acme/app@sha256:{HEX}") == "ghcr.io/acme/app"
    assert image_repository("registry:5000/team/app:1.2") == "registry:5000/team/app"
    assert image_repository(f"docker-pullable://acme/app@sha256:{HEX}") == "acme/app"
