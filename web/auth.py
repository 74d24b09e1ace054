"""Who may see the pages: holders of the query token, as for /v1/*.

A browser cannot put a bearer header on a link it follows, so a page accepts either

- ``Authorization: Bearer <query_token>`` (scripts, curl, the tests), or
- the session cookie that ``?token=<query_token>`` or the login form sets. The cookie is HttpOnly and
  SameSite=Strict, and holds an expiry and an HMAC of it keyed by the token, never the token itself: a
  copied cookie is not a bearer token for /v1/*, it expires, and changing the token ends every session.

Every comparison is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Final, Literal

from starlette.requests import Request

from linked_artifacts.settings import Settings

COOKIE: Final = "la_session"
# A working day: long enough not to nag, short enough that a forgotten browser session lapses.
SESSION_SECONDS: Final = 12 * 3600
_PURPOSE: Final = b"linked-artifacts web session v1"

AuthState = Literal["ok", "missing", "unconfigured"]


class WebAuth:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def token(self) -> str | None:
        return self._settings.secret("query_token")

    def token_matches(self, candidate: str) -> bool:
        expected = self.token
        return expected is not None and hmac.compare_digest(candidate.encode(), expected.encode())

    def _signature(self, expires: int, token: str) -> str:
        return hmac.new(token.encode(), _PURPOSE + b"|" + str(expires).encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, *, now: float | None = None) -> tuple[str, int]:
        """A new session value and its lifetime in seconds. Call only after the token was checked."""
        token = self.token
        if token is None:
            raise RuntimeError("no query token configured")
        expires = int((now if now is not None else time.time()) + SESSION_SECONDS)
        return f"{expires}.{self._signature(expires, token)}", SESSION_SECONDS

    def session_valid(self, value: str, *, now: float | None = None) -> bool:
        token = self.token
        expires_text, _, signature = value.partition(".")
        if token is None or not expires_text.isdigit() or not signature:
            return False
        expected = self._signature(int(expires_text), token)
        fresh = int(expires_text) > (now if now is not None else time.time())
        return hmac.compare_digest(signature.encode(), expected.encode()) and fresh

    def check(self, request: Request) -> AuthState:
        token = self.token
        if token is None:
            return "unconfigured"
        header = request.headers.get("authorization")
        if header is not None:
            # A wrong header is a wrong answer even with a valid cookie: scripts should learn their mistake.
            return "ok" if hmac.compare_digest(header.encode(), f"Bearer {token}".encode()) else "missing"
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and self.session_valid(cookie):
            return "ok"
        return "missing"
