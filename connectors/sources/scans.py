"""The ``/events/scans`` endpoint: one URL for every scanner, each body routed to its parser by its shape.

- an ``X-GitHub-Event`` header: a GitHub ``dependabot_alert`` / ``code_scanning_alert`` webhook;
- an object with ``SchemaVersion``: a Trivy JSON report;
- an object with ``matches`` and ``source``: a Grype JSON report.

Anything else is refused with 422, code ``unknown_format``, and a message listing the accepted formats.
"""

from __future__ import annotations

from typing import Any

from connectors.base import Delivery, InputError, ParseResult
from connectors.sources.github_alerts import parse_github_alert
from connectors.sources.grype import parse_grype
from connectors.sources.trivy import parse_trivy

__all__ = ["ACCEPTED_FORMATS", "parse_scan"]

ACCEPTED_FORMATS = (
    "Trivy JSON (trivy image --format json, SchemaVersion 2)",
    "Grype JSON (grype <image> -o json)",
    "GitHub dependabot_alert or code_scanning_alert webhooks (with the X-GitHub-Event header)",
)


def parse_scan(delivery: Delivery, payload: Any) -> ParseResult:
    """Route one scan delivery to the parser of its format."""
    if delivery.header("X-GitHub-Event"):
        return parse_github_alert(delivery, payload)
    if isinstance(payload, dict):
        if "SchemaVersion" in payload:
            return parse_trivy(delivery, payload)
        if "matches" in payload and "source" in payload:
            return parse_grype(delivery, payload)
    raise InputError(
        "$: unknown scan format; accepted: " + "; ".join(ACCEPTED_FORMATS),
        field="$",
        code="unknown_format",
    )
