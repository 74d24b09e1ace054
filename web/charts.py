"""Geometry of the server-rendered SVG charts: bar charts, the per-minute ingest chart, and an artifact's
lifecycle timeline.

This module only computes coordinates and labels; the templates (``_charts.html``) write the SVG, so every
label from the data goes through the same autoescaping as the rest of the page. No JavaScript draws
anything, so the charts work with scripts off and in a screenshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from web.queries import CountedLabel, IngestRate, LifecycleEvent, SlotTakeover

BAR_WIDTH: Final = 520  # px of the whole bar chart, labels included
BAR_LABEL: Final = 200  # px reserved for the labels left of the bars
BAR_ROW: Final = 24
INGEST_WIDTH: Final = 640
INGEST_HEIGHT: Final = 180
INGEST_LEFT: Final = 40  # y-axis labels
INGEST_BOTTOM: Final = 22  # x-axis labels
SOURCE_COLOURS: Final = 11  # css classes s0..s10, one per source the events model knows
TIMELINE_WIDTH: Final = 900
TIMELINE_LABEL: Final = 210
TIMELINE_ROW: Final = 22
TIMELINE_TOP: Final = 6
TIMELINE_AXIS: Final = 24
# Storage actions that change where an artifact is; "observed" (a runtime saw the image) is not one.
STORAGE_MARKS: Final = frozenset({"pushed", "deployed", "promoted", "copied", "moved", "published", "record",
                                  "updated", "deleted"})


class Bar(NamedTuple):
    label: str
    value: int
    y: int
    width: float  # px of the bar itself


class BarChart(NamedTuple):
    width: int
    height: int
    label_width: int
    row: int
    bars: tuple[Bar, ...]

    @property
    def empty(self) -> bool:
        return not any(bar.value for bar in self.bars)


def bar_chart(items: Sequence[CountedLabel]) -> BarChart:
    """Horizontal bars, one per label, scaled to the largest value (values are drawn as text too)."""
    top = max((item.value for item in items), default=0)
    room = BAR_WIDTH - BAR_LABEL - 60  # leave space for the value text after the longest bar
    bars = tuple(
        Bar(item.label, item.value, i * BAR_ROW, (item.value / top * room) if top else 0.0)
        for i, item in enumerate(items)
    )
    return BarChart(BAR_WIDTH, max(1, len(bars)) * BAR_ROW, BAR_LABEL, BAR_ROW, bars)


# --- ingest rate ------------------------------------------------------------------------------------------
class Column(NamedTuple):
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


class AxisTick(NamedTuple):
    position: float
    label: str


class LegendEntry(NamedTuple):
    label: str
    css: str
    total: int


class StackedColumns(NamedTuple):
    width: int
    height: int
    left: int
    plot_height: int
    columns: tuple[Column, ...]
    x_ticks: tuple[AxisTick, ...]
    y_ticks: tuple[AxisTick, ...]
    legend: tuple[LegendEntry, ...]
    total: int


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above value (a readable axis maximum)."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def ingest_chart(rate: IngestRate) -> StackedColumns:
    """One column per minute, stacked by source, over the last hour."""
    plot_width = INGEST_WIDTH - INGEST_LEFT - 8
    plot_height = INGEST_HEIGHT - INGEST_BOTTOM - 8
    per_minute = [sum(s.per_minute[m] for s in rate.series) for m in range(rate.minutes)]
    top = _nice_ceiling(max(per_minute, default=0) or 1)
    slot = plot_width / rate.minutes
    columns: list[Column] = []
    for minute in range(rate.minutes):
        base = 0
        at = (rate.start + timedelta(minutes=minute)).strftime("%H:%M")
        for index, series in enumerate(rate.series):
            count = series.per_minute[minute]
            if not count:
                continue
            height = count / top * plot_height
            y = 8 + plot_height - (base + count) / top * plot_height
            columns.append(Column(INGEST_LEFT + minute * slot + 1, y, max(1.0, slot - 2), height,
                                  f"s{index % SOURCE_COLOURS}", f"{at} UTC: {count} from {series.source}"))
            base += count
    x_ticks = tuple(
        AxisTick(INGEST_LEFT + m * slot, (rate.start + timedelta(minutes=m)).strftime("%H:%M"))
        for m in range(0, rate.minutes + 1, 10)
    )
    y_ticks = tuple(AxisTick(8 + plot_height - f * plot_height, str(int(top * f))) for f in (0, 0.5, 1))
    legend = tuple(LegendEntry(s.source, f"s{i % SOURCE_COLOURS}", s.total) for i, s in enumerate(rate.series))
    return StackedColumns(INGEST_WIDTH, INGEST_HEIGHT, INGEST_LEFT, plot_height, tuple(columns), x_ticks, y_ticks,
                          legend, rate.total)


# --- lifecycle timeline -----------------------------------------------------------------------------------
class Lane(NamedTuple):
    label: str
    y: int
    css: str


class Span(NamedTuple):
    x: float
    y: int
    width: float
    css: str
    title: str


class Mark(NamedTuple):
    x: float
    y: int
    shape: str  # circle, diamond, cross, bar
    css: str
    title: str


class Timeline(NamedTuple):
    width: int
    height: int
    label_width: int
    row: int
    lanes: tuple[Lane, ...]
    spans: tuple[Span, ...]
    marks: tuple[Mark, ...]
    ticks: tuple[AxisTick, ...]
    start: datetime
    end: datetime

    @property
    def empty(self) -> bool:
        return not self.marks and not self.spans


_TICK_STEPS: Final = (
    timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(hours=12), timedelta(days=1),
    timedelta(days=2), timedelta(days=7), timedelta(days=14), timedelta(days=30), timedelta(days=91),
    timedelta(days=365),
)


def _ticks(start: datetime, end: datetime, to_x: _Scale) -> tuple[AxisTick, ...]:
    span = end - start
    step = next((s for s in _TICK_STEPS if span / s <= 8), _TICK_STEPS[-1])
    fmt = "%b %d" if step >= timedelta(days=1) else "%b %d %H:%M"
    if step >= timedelta(days=1):
        first = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    else:
        first = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    ticks: list[AxisTick] = []
    at = first
    while at <= end:
        ticks.append(AxisTick(to_x(at), at.strftime(fmt)))
        at += step
    return tuple(ticks)


class _Scale:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.seconds = max((end - start).total_seconds(), 1.0)
        self.width = TIMELINE_WIDTH - TIMELINE_LABEL - 16

    def __call__(self, moment: datetime) -> float:
        fraction = (moment - self.start).total_seconds() / self.seconds
        return TIMELINE_LABEL + max(0.0, min(1.0, fraction)) * self.width


def _short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


class _Builder:
    """Lays out lanes top to bottom: stored, built, then each environment's deployment slots."""

    def __init__(self, scale: _Scale, end: datetime) -> None:
        self.scale = scale
        self.end = end
        self.lanes: list[Lane] = []
        self.spans: list[Span] = []
        self.marks: list[Mark] = []

    def lane(self, label: str, css: str) -> int:
        y = TIMELINE_TOP + len(self.lanes) * TIMELINE_ROW
        self.lanes.append(Lane(label, y, css))
        return y

    def storage(self, events: Sequence[LifecycleEvent]) -> None:
        stored = [e for e in events if e.kind == "storage"]
        if not stored:
            return
        y = self.lane("stored", "stored")
        start = stored[0].time
        self.spans.append(Span(self.scale(start), y, self.scale(self.end) - self.scale(start), "stored",
                               f"known to a registry since {start:%Y-%m-%d %H:%M} UTC"))
        for event in stored:
            if event.action in STORAGE_MARKS or event.status != "active":
                css = "deleted" if event.status == "deleted" else "stored"
                self.marks.append(Mark(self.scale(event.time), y, "cross" if css == "deleted" else "diamond", css,
                                       f"{event.action} ({event.status}) in {event.where} at "
                                       f"{event.time:%Y-%m-%d %H:%M} UTC"))

    def builds(self, events: Sequence[LifecycleEvent]) -> None:
        built = [e for e in events if e.kind == "build"]
        if not built:
            return
        y = self.lane("built", "built")
        seen: set[tuple[datetime, str, str]] = set()
        for event in built:
            if (event.time, event.where, event.action) in seen:
                continue
            seen.add((event.time, event.where, event.action))
            what = "provenance attested" if event.action == "attested" else f"workflow run {event.action}"
            outcome = f" ({event.status})" if event.status else ""
            self.marks.append(Mark(self.scale(event.time), y, "circle" if event.action != "attested" else "diamond",
                                   "built", f"{what}{outcome} for {event.where or 'an unnamed repository'} at "
                                   f"{event.time:%Y-%m-%d %H:%M} UTC"))

    def slot(self, label: str, events: Sequence[LifecycleEvent], takeovers: Sequence[SlotTakeover]) -> None:
        y = self.lane(label, "deployed")
        # Replay the slot's own events and the takeovers in time order; a stay starts at a deployment and
        # ends at a decommission (its own, or slot-wide) or when another digest takes the slot.
        moments: list[tuple[datetime, int, LifecycleEvent | SlotTakeover]] = [(e.time, 0, e) for e in events]
        moments += [(t.time, 1, t) for t in takeovers]
        since: datetime | None = None
        for moment, _, item in sorted(moments, key=lambda m: (m[0], m[1])):
            x = self.scale(moment)
            if isinstance(item, LifecycleEvent) and item.status == "deployed":
                if since is None:
                    since = moment
                    self.marks.append(Mark(x, y, "circle", "deployed",
                                           f"deployed {_short(item.digest)} to {label} at {moment:%Y-%m-%d %H:%M} UTC"))
                continue
            if since is None:
                continue
            if isinstance(item, SlotTakeover):
                what = f"superseded by {_short(item.digest)}" if item.digest else "workload removed"
            else:
                what = "decommissioned"
            self.spans.append(Span(self.scale(since), y, x - self.scale(since), "deployed",
                                   f"in {label} from {since:%Y-%m-%d %H:%M} to {moment:%Y-%m-%d %H:%M} UTC"))
            self.marks.append(Mark(x, y, "cross" if what == "decommissioned" else "bar", "ended",
                                   f"{what} at {moment:%Y-%m-%d %H:%M} UTC"))
            since = None
        if since is not None:
            self.spans.append(Span(self.scale(since), y, self.scale(self.end) - self.scale(since), "deployed open",
                                   f"in {label} since {since:%Y-%m-%d %H:%M} UTC"))


def timeline(
    events: Sequence[LifecycleEvent], takeovers: Sequence[SlotTakeover], *, end: datetime
) -> Timeline:
    """When the artifact was stored, built, deployed and decommissioned, one lane per environment slot."""
    times = [e.time for e in events] + [t.time for t in takeovers]
    last = max([end, *times])
    first = min(times, default=last - timedelta(days=1))
    padding = max((last - first) * 0.02, timedelta(minutes=5))
    start = first - padding
    scale = _Scale(start, last + padding)
    builder = _Builder(scale, last)
    builder.storage(events)
    builder.builds(events)
    deployments = [e for e in events if e.kind == "deployment" and e.slot]
    slots: dict[str, list[LifecycleEvent]] = {}
    for event in deployments:
        slots.setdefault(event.slot, []).append(event)
    # Environments in the order the artifact reached them (dev before staging before prod, usually).
    order = sorted(slots, key=lambda s: (min(e.time for e in slots[s]), s))
    by_environment: dict[str, list[str]] = {}
    for slot in order:
        by_environment.setdefault(slots[slot][0].environment, []).append(slot)
    for environment, env_slots in by_environment.items():
        for slot in env_slots:
            first_event = slots[slot][0]
            label = f"{environment or '(no environment)'} · {first_event.where or '-'} · {first_event.deployment_name}"
            builder.slot(label, slots[slot], [t for t in takeovers if t.slot == slot])
    height = TIMELINE_TOP + max(1, len(builder.lanes)) * TIMELINE_ROW + TIMELINE_AXIS
    return Timeline(
        TIMELINE_WIDTH, height, TIMELINE_LABEL, TIMELINE_ROW, tuple(builder.lanes), tuple(builder.spans),
        tuple(builder.marks), _ticks(start, last + padding, scale), start, last,
    )
