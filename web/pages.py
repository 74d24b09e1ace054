"""What each page shows: the reads behind it and the template context, one function per page.

These functions block (ClickHouse calls); the routes run each in a worker thread on that thread's own
warehouse session. They return a :class:`Page` (template names and context) or raise a
:class:`PageError` that names the fix. The same function serves the whole page and its live refresh
(the body template alone), so the two can never disagree.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from history.alert_filter import AlertQuery, FilterError, parse
from history.alerts import MAX_EXPORT, MAX_OFFSET, RankedAlert, search_alerts
from history.client import Warehouse
from history.linked_view import linked_view
from linked_artifacts.digests import InvalidDigest, normalise_digest
from linked_artifacts.events import RUNTIME_RISKS
from web import charts
from web.connector_metrics import Rejects
from web.queries import (
    SORT_KEYS,
    CountedLabel,
    Facets,
    SortKey,
    artifact_list,
    event_count,
    facets,
    ingest_rate,
    lifecycle,
    overview_counts,
)

DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 200
# The artifact page shows this much recent history (the linked view's history_limit).
ARTIFACT_HISTORY: Final = 50
# CSV export reads the ranking in one query, up to what the API could page through.
CSV_ROWS: Final = MAX_EXPORT
DEMO_HINT: Final = "run `linked-artifacts demo` while `linked-artifacts up` is running"
_QUOTE_NEEDED: Final = frozenset(' \t\r\n()"\\')


class PageError(Exception):
    """A page cannot be shown; ``message`` says what happened and ``fix`` what to do about it."""

    def __init__(self, status: int, message: str, fix: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fix = fix


class Page(NamedTuple):
    template: str  # the whole page
    body: str  # the part the live refresh replaces
    context: dict[str, Any]
    status: int = 200


# --- the filter bar (artifacts list and triage) -------------------------------------------------------------
class Chip(NamedTuple):
    term: str
    label: str
    group: str
    active: bool


class FilterState(NamedTuple):
    """The filter of a page: toggled chips, the typed query and the as-of time (datetime-local, UTC)."""

    chips: tuple[str, ...]
    q: str
    as_of: str

    def query_text(self) -> str:
        parts = [*self.chips, self.q.strip()]
        if self.as_of:
            try:
                parts.append("as-of:" + _as_of_iso(self.as_of))
            except FilterError:
                parts.append("as-of:" + filter_term("x", self.as_of)[2:])  # parse() names what is wrong
        return " ".join(p for p in parts if p)

    def parsed(self) -> AlertQuery:
        return parse(self.query_text())

    def params(self) -> dict[str, object]:
        return {"chip": self.chips, "q": self.q, "as_of": self.as_of}


def _as_of_iso(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise FilterError(f"as-of: {value[:40]!r} is not a time; pick one, e.g. 2026-05-10T12:00") from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def filter_term(qualifier: str, value: str) -> str:
    """``qualifier:value``, quoted as the filter grammar wants when the value has spaces or quotes."""
    if value and not any(ch in _QUOTE_NEEDED for ch in value):
        return f"{qualifier}:{value}"
    return qualifier + ':"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def filter_state(params: Mapping[str, Any]) -> FilterState:
    chips = tuple(dict.fromkeys(str(c) for c in params.get("chip", ()) if str(c).strip()))
    return FilterState(chips, str(params.get("q", "")), str(params.get("as_of", "")).strip())


CHIP_GROUPS: Final = ("deployment", "runtime risk", "environment", "registry", "other")


def chip_groups(state: FilterState, found: Facets) -> list[tuple[str, list[Chip]]]:
    """The chips by group, in the order the filter bar shows them."""
    chips = chip_options(state, found)
    grouped = [(group, [c for c in chips if c.group == group]) for group in CHIP_GROUPS]
    return [(group, members) for group, members in grouped if members]


def chip_options(state: FilterState, found: Facets) -> list[Chip]:
    """The chips the triage page and the list offer: deployment, runtime risks, environments, registries."""
    options = [("has:deployment", "deployed", "deployment")]
    options += [(filter_term("runtime-risk", r), r, "runtime risk") for r in RUNTIME_RISKS]
    options += [(filter_term("environment", e), e, "environment") for e in found.environments]
    options += [(filter_term("artifact-registry", r), r, "registry") for r in found.registries]
    known = {term for term, _, _ in options}
    # A chip in the URL that the data no longer offers stays visible, so it can be switched off.
    options += [(term, term, "other") for term in state.chips if term not in known]
    return [Chip(term, label, group, term in state.chips) for term, label, group in options]


def _int(value: Any, default: int, *, low: int, high: int) -> int:
    try:
        number = int(str(value))
    except ValueError:
        return default
    return max(low, min(number, high))


def _no_data(warehouse: Warehouse) -> bool:
    return event_count(warehouse) == 0


# --- artifacts list ------------------------------------------------------------------------------------------
def artifacts_page(warehouse: Warehouse, params: Mapping[str, Any]) -> Page:
    state = filter_state(params)
    sort_text = str(params.get("sort", "alerts"))
    sort: SortKey = next((k for k in SORT_KEYS if k == sort_text), "alerts")
    descending = str(params.get("dir", "desc")) != "asc"
    page = _int(params.get("page", 1), 1, low=1, high=100_000)
    per_page = _int(params.get("per_page", DEFAULT_PER_PAGE), DEFAULT_PER_PAGE, low=1, high=MAX_PER_PAGE)
    find = str(params.get("find", "")).strip()
    context: dict[str, Any] = {
        "title": "Artifacts",
        "nav": "artifacts",
        "filter": state,
        "find": find,
        "sort": sort,
        "dir": "desc" if descending else "asc",
        # Defaults stay out of the links, so a chip's address reads as what it filters.
        "params": {**state.params(), "find": find, "sort": None if sort == "alerts" else sort,
                   "dir": None if descending else "asc",
                   "per_page": per_page if per_page != DEFAULT_PER_PAGE else None},
        "chips": chip_groups(state, facets(warehouse)),
        "error": None,
        "listing": None,
        "empty_history": False,
    }
    try:
        context["listing"] = artifact_list(warehouse, state.parsed(), find=find, sort=sort, descending=descending,
                                           page=page, per_page=per_page)
    except FilterError as exc:
        context["error"] = exc.message
        return Page("artifacts.html", "_artifacts_body.html", context, 400)
    if context["listing"].total == 0:
        context["empty_history"] = _no_data(warehouse)
    return Page("artifacts.html", "_artifacts_body.html", context)


# --- one artifact --------------------------------------------------------------------------------------------
def _digest(value: str) -> str:
    try:
        return normalise_digest(value)
    except InvalidDigest as exc:
        raise PageError(422, exc.message, "A digest looks like sha256: followed by 64 hex digits; copy it from "
                        "the artifacts list.") from exc


def artifact_page(warehouse: Warehouse, digest_text: str, params: Mapping[str, Any]) -> Page:
    digest = _digest(digest_text)
    as_of_text = str(params.get("as_of", "")).strip()
    try:
        as_of = datetime.fromisoformat(_as_of_iso(as_of_text)) if as_of_text else None
    except FilterError as exc:
        raise PageError(400, exc.message, "Pick a time in the as-of field, or clear it for now.") from exc
    view = linked_view(warehouse, digest, history_limit=ARTIFACT_HISTORY, as_of=as_of)
    if view is None:
        when = f" as of {as_of:%Y-%m-%d %H:%M} UTC" if as_of else ""
        raise PageError(404, f"Nothing is known about {digest}{when}.",
                        "Check the digest, or send something that names it: a registry webhook, a build, a "
                        f"deployment or a scan ({DEMO_HINT} for sample data).")
    run_keys = sorted({f"run:{b['repository']}/{b['workflow_run_id']}" for b in view["builds"]
                       if b["repository"] and b["workflow_run_id"]})
    events, takeovers = lifecycle(warehouse, view["family"]["digests"], run_keys=run_keys, as_of=as_of)
    end = as_of or datetime.now(UTC)
    name = next((s["name"] for s in view["storage"] if s.get("name")), None)
    context = {
        "title": name or digest,
        "nav": "artifacts",
        "digest": digest,
        "name": name,
        "view": view,
        "as_of": as_of_text,
        "params": {"as_of": as_of_text},
        "timeline": charts.timeline(events, takeovers, end=end),
        "environments": _deployments_by_environment(view["deployments"]),
        "open_alerts": sum(1 for a in view["alerts"] if a["state"] == "open"),
    }
    return Page("artifact.html", "_artifact_body.html", context)


def _deployments_by_environment(deployments: Iterable[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for deployment in deployments:
        grouped.setdefault(deployment["logical_environment"] or "(no environment)", []).append(deployment)
    return sorted(grouped.items())


# --- triage --------------------------------------------------------------------------------------------------
def triage_page(warehouse: Warehouse, params: Mapping[str, Any]) -> Page:
    state = filter_state(params)
    page = _int(params.get("page", 1), 1, low=1, high=MAX_OFFSET // DEFAULT_PER_PAGE)
    per_page = _int(params.get("per_page", DEFAULT_PER_PAGE), DEFAULT_PER_PAGE, low=1, high=MAX_PER_PAGE)
    context: dict[str, Any] = {
        "title": "Triage",
        "nav": "triage",
        "filter": state,
        "params": {**state.params(), "per_page": per_page if per_page != DEFAULT_PER_PAGE else None},
        "chips": chip_groups(state, facets(warehouse)),
        "error": None,
        "search": None,
        "page": page,
        "per_page": per_page,
        "pages": 1,
        "empty_history": False,
    }
    try:
        search = search_alerts(warehouse, state.query_text(), limit=per_page, offset=(page - 1) * per_page)
    except FilterError as exc:
        context["error"] = exc.message
        return Page("triage.html", "_triage_body.html", context, 400)
    context["search"] = search
    context["pages"] = max(1, -(-search.total_count // per_page))
    if search.total_count == 0:
        context["empty_history"] = _no_data(warehouse)
    return Page("triage.html", "_triage_body.html", context)


CSV_COLUMNS: Final = (
    "rank", "score", "vulnerability_id", "severity", "cvss", "epss", "state", "scope", "subject", "repository",
    "package", "fixed_version", "tool", "deployed", "environments", "runtime_risks", "registries", "repositories",
    "artifact", "reasons", "first_seen", "updated_at", "url", "alert_key",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        text = "; ".join(str(v) for v in value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    else:
        text = str(value)
    # A spreadsheet runs a cell that starts like a formula; data from webhooks must stay data.
    return "'" + text if text.startswith(_FORMULA_START) and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_row(alert: RankedAlert) -> list[str]:
    return [_cell(getattr(alert, column)) for column in CSV_COLUMNS]


def triage_csv(warehouse: Warehouse, params: Mapping[str, Any]) -> tuple[str, str]:
    """Every alert the triage page's filter matches, in rank order, as CSV; and a file name for it."""
    state = filter_state(params)
    text = state.query_text()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    search = search_alerts(warehouse, text, limit=CSV_ROWS, max_limit=MAX_EXPORT)
    writer.writerows(_csv_row(alert) for alert in search.results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return out.getvalue(), f"linked-artifacts-alerts-{stamp}.csv"


# --- overview ------------------------------------------------------------------------------------------------
def overview_page(warehouse: Warehouse, rejects: Rejects) -> Page:
    counts = overview_counts(warehouse)
    rate = ingest_rate(warehouse)
    by_reason = [CountedLabel(reason, count) for reason, count in rejects.by_reason().items()]
    context = {
        "title": "Overview",
        "nav": "overview",
        "params": {},
        "counts": counts,
        "ingest": charts.ingest_chart(rate),
        "rejects": rejects,
        "rejects_chart": charts.bar_chart(by_reason),
        "deployed_chart": charts.bar_chart(counts.deployed_by_environment),
        "exposure_chart": charts.bar_chart(counts.open_alerts_by_exposure),
        "empty_history": counts.events == 0,
    }
    return Page("overview.html", "_overview_body.html", context)
