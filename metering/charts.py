"""One small bar chart of requests over time, drawn on the server as SVG geometry for a template: no chart library,
no script, readable by a screen reader through its table twin."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

WIDTH = 640
HEIGHT = 160
PLOT_TOP = 12
PLOT_BOTTOM = 136  # below it: the time labels
LEFT = 36  # room for the scale's numbers


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    refused: int  # of value, how many were refused or failed (drawn as the bar's lighter top)
    refused_height: float
    label: str  # "14:00" or "Mon 3"
    title: str  # the tooltip and accessible name: "Mon 14:00: 12 requests"

    @property
    def cx(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True)
class Tick:
    y: float
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    plot_bottom: int
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Bar]  # the bars whose label is printed (every few, so they never overlap)
    total: int
    peak: int


def _nice_ceiling(value: int) -> int:
    """The scale's top: the first of 2, 4, 10, 20, 40, 100, ... at or above the highest bar (halves stay whole)."""
    top = 2
    while top < value:
        top = top * 5 // 2 if str(top)[0] == "4" else top * 2
    return top


def requests_chart(
    points: list[tuple[datetime, int, int]], *, hourly: bool, zone: tzinfo, label_every: int | None = None
) -> Chart:
    """Bars for (bucket start, requests, of which not successful) in time order."""
    count = max(1, len(points))
    peak = max((value for _, value, _ in points), default=0)
    top = _nice_ceiling(max(peak, 1))
    plot_width = WIDTH - LEFT - 4
    slot = plot_width / count
    bar_width = max(1.0, slot * 0.7)
    plot_height = PLOT_BOTTOM - PLOT_TOP
    bars = []
    for index, (start, value, refused) in enumerate(points):
        local = start.astimezone(zone)
        height = plot_height * value / top
        refused_height = plot_height * min(refused, value) / top
        if hourly:
            label = local.strftime("%H:%M")
            title = f"{local:%a %H:%M}: {value:,} request{'s' if value != 1 else ''}"
        else:
            label = f"{local:%a} {local.day}"
            title = f"{local:%a} {local.day} {local:%b}: {value:,} request{'s' if value != 1 else ''}"
        if refused:
            title += f", {refused:,} not successful"
        bars.append(
            Bar(
                x=round(LEFT + index * slot + (slot - bar_width) / 2, 1),
                y=round(PLOT_BOTTOM - height, 1),
                width=round(bar_width, 1),
                height=round(height, 1),
                value=value,
                refused=refused,
                refused_height=round(refused_height, 1),
                label=label,
                title=title,
            )
        )
    every = label_every or max(1, count // 6)
    ticks = [Tick(y=round(PLOT_BOTTOM - plot_height * part / 2, 1), value=top * part // 2) for part in (0, 1, 2)]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        plot_bottom=PLOT_BOTTOM,
        bars=bars,
        ticks=ticks,
        labels=bars[::every],
        total=sum(value for _, value, _ in points),
        peak=peak,
    )
