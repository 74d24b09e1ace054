"""Chart geometry: bars scale to the largest value, the ingest chart stacks sources per minute, and the
timeline turns deployments, decommissions and takeovers into stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web.charts import bar_chart, ingest_chart, timeline
from web.queries import CountedLabel, IngestRate, IngestSeries, LifecycleEvent, SlotTakeover

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SLOT = "prod/eu/aks-1/api"


def event(kind: str, hours: float, *, status: str = "active", action: str = "pushed", slot: str = "") -> LifecycleEvent:
    return LifecycleEvent(kind, T0 + timedelta(hours=hours), "sha256:" + "a" * 64, action, status,
                          "aks-1" if slot else "docker-local", "prod" if slot else "", slot, "api" if slot else "")


def test_bars_scale_to_the_largest_value() -> None:
    chart = bar_chart([CountedLabel("prod", 10), CountedLabel("dev", 5), CountedLabel("none", 0)])
    assert chart.bars[0].width == 2 * chart.bars[1].width > 0
    assert chart.bars[2].width == 0 and not chart.empty
    assert bar_chart([CountedLabel("x", 0)]).empty


def test_the_ingest_chart_stacks_sources_within_a_minute() -> None:
    rate = IngestRate(T0, 3, (IngestSeries("github", (4, 0, 1)), IngestSeries("trivy", (1, 0, 0))))
    chart = ingest_chart(rate)
    first_minute = [c for c in chart.columns if c.title.startswith("00:00")]
    assert len(first_minute) == 2
    github, trivy = first_minute
    assert abs(github.height - 4 * trivy.height) < 1e-6
    assert abs(trivy.y + trivy.height - github.y) < 1e-6  # trivy sits on top of github
    assert chart.total == 6 and [e.total for e in chart.legend] == [5, 1]


def test_a_deployment_stays_until_decommissioned() -> None:
    chart = timeline([event("deployment", 1, status="deployed", slot=SLOT),
                      event("deployment", 5, status="decommissioned", slot=SLOT)], [], end=T0 + timedelta(hours=10))
    [span] = chart.spans
    assert "from 2026-05-01 01:00 to 2026-05-01 05:00" in span.title
    assert [m.title.split(" at ")[0] for m in chart.marks] == [f"deployed {'a' * 12} to prod · aks-1 · api",
                                                              "decommissioned"]


def test_a_takeover_ends_the_stay_and_an_open_stay_runs_to_the_end() -> None:
    chart = timeline(
        [event("deployment", 1, status="deployed", slot=SLOT), event("deployment", 8, status="deployed", slot=SLOT)],
        [SlotTakeover(SLOT, T0 + timedelta(hours=3), "sha256:" + "b" * 64)],
        end=T0 + timedelta(hours=10),
    )
    closed, still = chart.spans
    assert "to 2026-05-01 03:00" in closed.title
    assert still.css == "deployed open" and "since 2026-05-01 08:00" in still.title
    assert any(m.title.startswith(f"superseded by {'b' * 12}") for m in chart.marks)


def test_lanes_are_stored_built_then_each_slot() -> None:
    chart = timeline([event("storage", 0), event("build", 0.5, action="completed", status="success"),
                      event("deployment", 1, status="deployed", slot=SLOT)], [], end=T0 + timedelta(hours=2))
    assert [lane.label for lane in chart.lanes] == ["stored", "built", "prod · aks-1 · api"]
    assert chart.ticks and all(chart.label_width <= t.position <= chart.width for t in chart.ticks)


def test_an_artifact_without_events_has_an_empty_timeline() -> None:
    assert timeline([], [], end=T0).empty
