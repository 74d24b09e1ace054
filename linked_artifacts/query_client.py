"""How the CLI asks questions: through the running worker's query API, or straight to ClickHouse when
nothing runs (embedded chDB allows one process per data directory, so a running worker owns it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from linked_artifacts.errors import LinkedArtifactsError
from linked_artifacts.settings import Settings


class QueryFailed(LinkedArtifactsError):
    code = "query_failed"


class QueryClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base = f"http://{settings.http_host}:{settings.query_port}"

    def _headers(self) -> dict[str, str]:
        token = self.settings.secret("query_token")
        if token is None:
            raise QueryFailed("no query token: run `linked-artifacts up` once, or set LINKED_ARTIFACTS_QUERY_TOKEN")
        return {"Authorization": f"Bearer {token}"}

    def running(self) -> bool:
        try:
            return httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(method, self.base + path, headers=self._headers(), timeout=120, **kwargs)
        except httpx.HTTPError as exc:
            raise QueryFailed(f"the query service at {self.base} does not answer ({exc}). Fix: start it with "
                              "`linked-artifacts up`") from exc
        if response.status_code >= 400:
            raise QueryFailed(_detail(response), status=response.status_code)
        return response

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A call whose answer is read as it arrives (exports); no time limit between chunks is short."""
        timeout = httpx.Timeout(120, read=600)
        try:
            with httpx.stream(method, self.base + path, headers=self._headers(), timeout=timeout, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise QueryFailed(_detail(response), status=response.status_code)
                yield response
        except httpx.HTTPError as exc:
            raise QueryFailed(f"the query service at {self.base} stopped answering ({exc}). Fix: check that "
                              "`linked-artifacts up` still runs, then try again") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("error", {}).get("message") or body.get("detail") or response.text
    except ValueError:
        detail = response.text
    return str(detail)
