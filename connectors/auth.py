"""Who may send what: GitHub webhook HMAC, JFrog event auth, bearer tokens by scope.

Every check runs over the raw request bytes before anything is parsed, compares in constant time
(``hmac.compare_digest`` over bytes, so a non-ASCII header cannot raise), and fails with ``AuthFailure``:
its ``message`` is safe to answer (401), its ``reason`` is for the log. Neither ever contains a secret.
A source whose secret is not configured fails with ``NotConfigured`` (503): unsigned input is never accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import ENV_PREFIX, ArtifactoryAuthMode, Settings

GITHUB_SIGNATURE_HEADER = "x-hub-signature-256"
JFROG_AUTH_HEADER = "x-jfrog-event-auth"

# Bearer scope -> the settings whose tokens grant it, in order of preference.
BEARER_SCOPES: Mapping[str, tuple[str, ...]] = {
    "metadata:write": ("metadata_write_token",),
    # A writer may read back what it wrote, as on GitHub.
    "metadata:read": ("metadata_read_token", "metadata_write_token"),
    "attestations": ("attestations_token",),
    "cloudevents": ("cloudevents_token",),
    "kubernetes": ("kubernetes_token",),
    "scans": ("scans_token",),
}

# Authorization schemes accepted: GitHub's API clients send either "Bearer" or the older "token".
_SCHEMES = ("bearer", "token")


class AuthFailure(LinkedArtifactsError):
    """The request is not signed or authorised for this endpoint: 401, logged, never stored."""

    code = "unauthorized"

    def __init__(self, message: str, *, reason: str, field: str | None = None) -> None:
        super().__init__(message, field=field, status=401)
        self.reason = reason


class NotConfigured(LinkedArtifactsError):
    """The endpoint's secret is not set, so nothing it receives could be verified: 503."""

    code = "not_configured"
    retriable = True

    def __init__(self, *settings_names: str) -> None:
        names = " or ".join(env_name(n) for n in settings_names)
        super().__init__(f"this endpoint is disabled: {names} is not configured", status=503)
        self.settings_names = settings_names


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def _bytes(value: str) -> bytes:
    # surrogatepass: any str a header or setting can hold encodes, so compare_digest never raises.
    return value.encode("utf-8", "surrogatepass")


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(_bytes(a), _bytes(b))


def require_secret(settings: Settings, name: str) -> str:
    value = settings.secret(name)
    if not value:
        raise NotConfigured(name)
    return value


def scope_tokens(settings: Settings, scope: str) -> list[str]:
    """The configured tokens that grant ``scope``; NotConfigured when there is none."""
    names = BEARER_SCOPES[scope]
    tokens = [t for t in (settings.secret(n) for n in names) if t]
    if not tokens:
        raise NotConfigured(*names)
    return tokens


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()


def github_signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for ``body``."""
    return "sha256=" + hmac_sha256_hex(secret, body)


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    """Check ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``."""
    field = "X-Hub-Signature-256"
    if not header:
        raise AuthFailure(f"missing {field} header", reason="signature header missing", field=field)
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or not digest:
        raise AuthFailure(
            f"malformed {field} header; expected sha256=<hex>",
            reason="signature header malformed",
            field=field,
        )
    if not constant_time_equal(digest.lower(), hmac_sha256_hex(secret, body)):
        raise AuthFailure(f"{field} does not match the body", reason="signature mismatch", field=field)


def verify_jfrog(secret: str, body: bytes, header: str | None, *, mode: ArtifactoryAuthMode) -> str:
    """Check ``X-JFrog-Event-Auth`` in the configured mode and return the mode that matched.

    ``plain``: the header carries the shared secret (JFrog's default, ``use_secret_for_signing: false``).
    ``hmac-sha256``: it carries hex(HMAC-SHA256(secret, raw body)) (``use_secret_for_signing: true``).
    When the other mode would have matched, the log reason says so: that is a misconfiguration, still 401.
    """
    field = "X-JFrog-Event-Auth"
    if not header:
        raise AuthFailure(f"missing {field} header", reason="event auth header missing", field=field)
    value = header.strip()
    expected_hmac = hmac_sha256_hex(secret, body)
    presented_hmac = value.lower().removeprefix("sha256=")
    plain_ok = constant_time_equal(value, secret)
    hmac_ok = constant_time_equal(presented_hmac, expected_hmac)
    if mode == "plain" and plain_ok:
        return "plain"
    if mode == "hmac-sha256" and hmac_ok:
        return "hmac-sha256"
    if plain_ok or hmac_ok:
        other = "plain" if plain_ok else "hmac-sha256"
        reason = (
            f"header matches {other} mode but artifactory_auth_mode is {mode}; "
            f"set {env_name('artifactory_auth_mode')}={other} "
            "or change the JFrog webhook's use_secret_for_signing"
        )
    else:
        reason = f"no match in {mode} mode"
    raise AuthFailure(f"{field} is not valid for this webhook", reason=reason, field=field)


def bearer_token(authorization: str | None) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (or ``token <token>``), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() not in _SCHEMES:
        return None
    return token.strip() or None


def verify_bearer(authorization: str | None, tokens: Sequence[str]) -> None:
    """Check the bearer token against every accepted token (all compared, so timing says nothing)."""
    field = "Authorization"
    presented = bearer_token(authorization)
    if presented is None:
        reason = "authorization header missing" if not authorization else "not a bearer token"
        raise AuthFailure("missing or malformed bearer token", reason=reason, field=field)
    matched = False
    for token in tokens:
        matched |= constant_time_equal(presented, token)
    if not matched:
        raise AuthFailure("invalid bearer token for this endpoint", reason="token mismatch", field=field)
