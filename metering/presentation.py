"""Allowance state in the words and the time zone of the person reading the page: "62% of the 5-hour allowance used,
next request frees up at 14:20 (in 2 h 10 min)". Pure functions over metering.selectors' AllowanceStatus: the
numbers come from the admission engine, never recomputed here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.http import HttpRequest

from billing.plan_terms import per_duration
from metering.selectors import AllowanceState, AllowanceStatus

# Set by a line of script in base.html from the browser's Intl time zone; pages fall back to the server's.
TZ_COOKIE = "tz"

OK, WARNING, EXHAUSTED = "ok", "warning", "exhausted"


def zone_for(request: HttpRequest) -> tzinfo:
    """The reader's time zone from the cookie the browser sets, else the server's TIME_ZONE."""
    name = unquote(request.COOKIES.get(TZ_COOKIE, ""))[:64]
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a made-up or stale name: not worth an error on a page that only shows times
    return ZoneInfo(settings.TIME_ZONE)


def in_words(seconds: float) -> str:
    """How long until something happens, the way people say it: "in 2 h 10 min", "in 45 s", "in 3 d 4 h"."""
    total = max(0, int(seconds + 0.999))  # round up: "in 0 s" for something still ahead would be wrong
    if total < 60:
        return f"in {total} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"in {minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"in {hours} h {minutes} min" if minutes else f"in {hours} h"
    days, hours = divmod(hours, 24)
    return f"in {days} d {hours} h" if hours else f"in {days} d"


def window_title(state: AllowanceState) -> str:
    """'5-hour allowance', 'Weekly allowance'."""
    if state.name == "weekly":
        weekly = state.window_seconds == 604_800
        return "Weekly allowance" if weekly else f"Allowance {per_duration(state.window_seconds)}"
    words = per_duration(state.window_seconds).removeprefix("per ")  # "5 hours", "minute"
    count, _, unit = words.partition(" ")
    if not unit:
        return f"One-{count} allowance"
    return f"{count}-{unit.removesuffix('s')} allowance"


@dataclass(frozen=True)
class Moment:
    at: datetime  # in the reader's zone
    in_words: str


@dataclass(frozen=True)
class AllowanceView:
    state: AllowanceState
    title: str
    level: str  # OK | WARNING | EXHAUSTED
    next_free: Moment | None  # when one more request fits
    clear: Moment | None  # when the window holds nothing again

    @property
    def exhausted(self) -> bool:
        return self.level == EXHAUSTED


def _moment(at: datetime | None, now: datetime, zone: tzinfo) -> Moment | None:
    if at is None:
        return None
    return Moment(at=at.astimezone(zone), in_words=in_words((at - now).total_seconds()))


def allowance_view(state: AllowanceState, *, now: datetime, zone: tzinfo) -> AllowanceView:
    if state.degraded:
        level = OK  # unknown numbers: say nothing alarming (the page says the numbers are unavailable)
    elif state.remaining <= 0:
        level = EXHAUSTED
    elif state.warning:
        level = WARNING
    else:
        level = OK
    return AllowanceView(
        state=state,
        title=window_title(state),
        level=level,
        next_free=_moment(state.next_free_at, now, zone),
        clear=_moment(state.resets_at, now, zone),
    )


@dataclass(frozen=True)
class AllowanceSummary:
    """What the dashboard and the usage page say about the allowances as a whole."""

    views: list[AllowanceView]
    level: str
    degraded: bool
    blocking: AllowanceView | None  # the exhausted allowance that frees up last: the one to wait for
    degrades_to: str | None  # the model that answers while exhausted, when the plan degrades instead of refusing

    @property
    def exhausted(self) -> bool:
        return self.level == EXHAUSTED

    @property
    def warning(self) -> bool:
        return self.level == WARNING

    @property
    def fullest(self) -> AllowanceView | None:
        """The allowance closest to its limit: the one a warning names."""
        return max(self.views, key=lambda view: view.state.percent_used, default=None)


def allowance_summary(status: AllowanceStatus, *, now: datetime, zone: tzinfo) -> AllowanceSummary:
    views = [allowance_view(state, now=now, zone=zone) for state in status.allowances]
    exhausted = [view for view in views if view.exhausted]
    level = EXHAUSTED if exhausted else WARNING if any(view.level == WARNING for view in views) else OK
    blocking = max(exhausted, key=lambda v: v.next_free.at if v.next_free else now, default=None)
    return AllowanceSummary(
        views=views,
        level=level,
        degraded=any(view.state.degraded for view in views),
        blocking=blocking,
        degrades_to=status.plan.degrade_to if status.plan.degrades else None,
    )
