"""Digest rules: every digest becomes ``sha256:<64 lowercase hex>``; tags are never identities."""

from __future__ import annotations

import re

from linked_artifacts.errors import LinkedArtifactsError

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_PREFIXED = re.compile(r"sha256[:_]{1,2}([0-9a-fA-F]{64})")


class InvalidDigest(LinkedArtifactsError):
    code = "invalid_digest"
    dead_letter = True


def normalise_digest(value: str, *, field: str = "digest") -> str:
    """Accepts bare hex (JFrog), ``sha256:hex``, ``sha256__hex`` (Artifactory paths) and image references
    such as ``docker-pullable://repo@sha256:hex`` or ``ghcr.io/acme/app@sha256:hex`` (Kubernetes imageID)."""
    text = value.strip()
    if _HEX64.fullmatch(text):
        return "sha256:" + text.lower()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    elif "://" in text:
        text = text.split("://", 1)[1]
    match = _PREFIXED.fullmatch(text)
    if match:
        return "sha256:" + match.group(1).lower()
    if ":" in text and not text.startswith("sha256"):
        algorithm = text.split(":", 1)[0]
        raise InvalidDigest(
            f"{field}: only sha256 digests are supported, got algorithm {algorithm!r}", field=field
        )
    raise InvalidDigest(
        f"{field}: {value[:100]!r} is not a sha256 digest (expected sha256:<64 hex>)", field=field
    )


def is_digest(value: str) -> bool:
    try:
        normalise_digest(value)
    except InvalidDigest:
        return False
    return True


def image_repository(image_ref: str) -> str | None:
    """The repository part of an image reference: ``ghcr.io/acme/app@sha256:..`` -> ``ghcr.io/acme/app``."""
    ref = image_ref.split("://", 1)[1] if "://" in image_ref else image_ref
    ref = ref.split("@", 1)[0]
    last = ref.rsplit("/", 1)
    if ":" in last[-1]:
        ref = ref.rsplit(":", 1)[0]
    if not ref or ref.startswith("sha256"):
        return None
    return ref
