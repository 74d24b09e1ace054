"""Templates and responses: one Jinja environment with autoescaping forced on, and the headers every page
carries.

Autoescaping is on for every template whatever its name, so a value from the data (a tag, a package name,
a deployment name sent by anyone who holds a source token) is always text, never markup. Nothing in the
templates marks data ``|safe``. Links built from data go through :func:`safe_href`, so a ``javascript:``
URL in a webhook never becomes a link.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

import jinja2
from fastapi.responses import HTMLResponse, Response

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
STATIC: Final = Path(__file__).resolve().parent / "static"

# Pages hold data that only query-token holders may see: no caching anywhere, no framing, no referrer
# (a URL can name a digest or a filter), and a policy that allows our own script and styles only.
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def safe_href(url: object) -> str:
    """``url`` when it is an absolute http(s) URL, else '' (the template then shows text, not a link)."""
    if not isinstance(url, str):
        return ""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else ""


def short_digest(digest: object, length: int = 12) -> str:
    """``sha256:0123456789ab…``: enough to recognise, the full digest is in the title and the link."""
    text = str(digest or "")
    algorithm, _, hexpart = text.partition(":")
    return f"{algorithm}:{hexpart[:length]}…" if hexpart and len(hexpart) > length else text


def when(value: object) -> str:
    """A time as ``YYYY-MM-DD HH:MM UTC``; accepts datetimes and ISO 8601 strings."""
    if value is None or value == "":
        return "—"
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def query_string(params: Mapping[str, object], **changes: object) -> str:
    """``?a=1&b=2`` from the page's parameters with some changed; None or '' drops a parameter. Lists
    repeat the parameter (the filter chips)."""
    merged: dict[str, object] = {**params, **changes}
    pairs: list[tuple[str, str]] = []
    for name, value in merged.items():
        if value is None or value == "" or value == ():
            continue
        if isinstance(value, list | tuple):
            pairs.extend((name, str(v)) for v in value)
        else:
            pairs.append((name, str(value)))
    return "?" + urlencode(pairs) if pairs else "?"


def toggled(items: Sequence[str], item: str) -> tuple[str, ...]:
    """``items`` with ``item`` switched: removed when present, appended when not (a filter chip's link)."""
    return tuple(i for i in items if i != item) if item in items else (*items, item)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its file name
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test suite, not a page at night
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(href=safe_href, short=short_digest, when=when)
    env.globals.update(qs=query_string, toggled=toggled)
    return env


ENVIRONMENT: Final = _environment()


def render(template: str, context: Mapping[str, Any]) -> str:
    return ENVIRONMENT.get_template(template).render(context)


class Timer:
    """Server time of one page, by phase, for the ``Server-Timing`` header (read by bench/web_pages.py)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def header(self) -> str:
        total = time.perf_counter() - self.started
        parts = [f"{name};dur={seconds * 1000:.1f}" for name, seconds in self.phases.items()]
        parts.append(f"total;dur={total * 1000:.1f}")
        return ", ".join(parts)


def page_response(html: str, *, status: int = 200, timer: Timer | None = None,
                  headers: Mapping[str, str] | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status)
    apply_headers(response, timer=timer, headers=headers)
    return response


def apply_headers(response: Response, *, timer: Timer | None = None, headers: Mapping[str, str] | None = None) -> None:
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    if timer is not None:
        response.headers["Server-Timing"] = timer.header()
