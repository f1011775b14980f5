"""The words and shapes the pages use: durations as people say them, allowance titles, levels, the chart's scale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from metering.charts import requests_chart
from metering.presentation import EXHAUSTED, OK, WARNING, allowance_view, in_words, window_title
from metering.selectors import AllowanceState


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "in 0 s"),
        (44.2, "in 45 s"),
        (60, "in 1 min"),
        (7800, "in 2 h 10 min"),
        (7200, "in 2 h"),
        (273_600, "in 3 d 4 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, words: str) -> None:
    assert in_words(seconds) == words


def state(name: str = "short", used: int = 0, limit: int = 10, window: int = 18_000) -> AllowanceState:
    now = datetime.now(UTC)
    return AllowanceState(
        name=name,
        limit=limit,
        used=used,
        remaining=max(0, limit - used),
        window_seconds=window,
        percent_used=min(100, used * 100 // limit),
        next_free_at=now + timedelta(hours=1) if used else None,
        resets_at=now + timedelta(hours=2) if used else None,
        degraded=False,
    )


def test_allowances_are_titled_by_their_window() -> None:
    assert window_title(state(window=18_000)) == "5-hour allowance"
    assert window_title(state(window=3_600)) == "One-hour allowance"
    assert window_title(state(name="weekly", window=604_800)) == "Weekly allowance"


def test_the_level_is_warning_from_80_percent_and_exhausted_at_the_limit() -> None:
    now = datetime.now(UTC)
    assert [allowance_view(state(used=used), now=now, zone=UTC).level for used in (7, 8, 10)] == [
        OK,
        WARNING,
        EXHAUSTED,
    ]
    view = allowance_view(state(used=3), now=now, zone=UTC)
    assert view.next_free is not None and view.next_free.in_words in ("in 1 h", "in 59 min")


def test_the_chart_scale_fits_the_highest_bar() -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    points = [(start + timedelta(hours=h), value, 0) for h, value in enumerate([0, 3, 41, 7])]
    chart = requests_chart(points, hourly=True, zone=UTC)
    assert chart.ticks[-1].value == 100 and chart.peak == 41 and chart.total == 51
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.label == "02:00" and tallest.y >= 12  # never above the plot
    assert all(bar.height == 0 for bar in chart.bars if bar.value == 0)
