"""Reading usage for pages and the API: allowance state from the admission engine, totals from the roll-ups (never
from raw events), and the request log from the ledger rows.

Days are UTC days, the roll-ups' buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import QuerySet, Sum

from apikeys.models import ApiKey
from billing.admission import LimitState, get_engine
from billing.allowances import organization_limits, scope_for
from billing.selectors import PlanSnapshot, plan_snapshot_for_organization
from metering.events import OUTCOMES
from metering.ledger import ms_to_datetime
from metering.models import ROLLUP_COUNTERS, Granularity, UsageEvent, UsageRollup

WARNING_PERCENT = 80  # the usage page's "near the limit" state starts here


@dataclass(frozen=True)
class UsageTotals:
    requests: int = 0
    billed_requests: int = 0
    cost_units: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    outcomes: dict[str, int] | None = None  # every outcome, zeros included

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> UsageTotals:
        value = {name: int(row.get(name) or 0) for name in ROLLUP_COUNTERS}
        return cls(
            requests=value["requests"],
            billed_requests=value["billed_requests"],
            cost_units=value["cost_units"],
            prompt_tokens=value["prompt_tokens"],
            completion_tokens=value["completion_tokens"],
            outcomes={outcome: value[f"outcome_{outcome}"] for outcome in OUTCOMES},
        )


@dataclass(frozen=True)
class DayUsage:
    day: date
    totals: UsageTotals


@dataclass(frozen=True)
class KeyUsage:
    key_id: int
    name: str  # "" when the key no longer exists
    masked: str
    totals: UsageTotals


@dataclass(frozen=True)
class ModelUsage:
    model: str
    totals: UsageTotals


@dataclass(frozen=True)
class AllowanceState:
    name: str  # "short" | "weekly"
    limit: int
    used: int
    remaining: int
    window_seconds: int
    percent_used: int
    next_free_at: datetime | None  # when the oldest counted request leaves the window
    resets_at: datetime | None  # when the window is clear again (None: nothing counted)
    degraded: bool  # the fast state could not be read: numbers are placeholders

    @classmethod
    def of(cls, state: LimitState) -> AllowanceState:
        percent = 100 if state.limit == 0 else min(100, state.used * 100 // state.limit)
        return cls(
            name=state.name,
            limit=state.limit,
            used=state.used,
            remaining=state.remaining,
            window_seconds=state.window_ms // 1000,
            percent_used=percent,
            next_free_at=ms_to_datetime(state.next_free_at_ms) if state.next_free_at_ms is not None else None,
            resets_at=ms_to_datetime(state.clear_at_ms) if state.clear_at_ms is not None else None,
            degraded=state.degraded,
        )

    @property
    def warning(self) -> bool:
        return self.percent_used >= WARNING_PERCENT


@dataclass(frozen=True)
class AllowanceStatus:
    plan: PlanSnapshot
    allowances: list[AllowanceState]

    @property
    def warning(self) -> bool:
        return any(state.warning for state in self.allowances)


def allowance_status(*, organization_id: int, now_ms: int | None = None) -> AllowanceStatus:
    """The organization's plan and, per allowance, what is used and when it comes back: the same counters the
    gateway admits against. Raises billing.selectors.NoDefaultPlan when no plan applies."""
    plan = plan_snapshot_for_organization(organization_id=organization_id)
    limits = organization_limits(plan=plan)
    states = get_engine().status_sync(scope=scope_for(organization_id), limits=limits, now_ms=now_ms)
    return AllowanceStatus(plan=plan, allowances=[AllowanceState.of(state) for state in states])


def usage_days(*, days: int, today: date | None = None) -> tuple[date, date]:
    """The last `days` UTC days, today included: (first day, day after the last)."""
    today = today or datetime.now(UTC).date()
    return today - timedelta(days=days - 1), today + timedelta(days=1)


def _day_rollups(organization_id: int, since: date, until: date) -> QuerySet[UsageRollup]:
    return UsageRollup.objects.filter(
        organization_id=organization_id,
        granularity=Granularity.DAY,
        bucket_start__gte=_midnight(since),
        bucket_start__lt=_midnight(until),
    )


def _sums() -> dict[str, Sum]:
    return {name: Sum(name) for name in ROLLUP_COUNTERS}


def usage_totals(*, organization_id: int, since: date, until: date) -> UsageTotals:
    return UsageTotals.of(_day_rollups(organization_id, since, until).aggregate(**_sums()))


def usage_by_day(*, organization_id: int, since: date, until: date) -> list[DayUsage]:
    """One entry per day in [since, until), days without requests included (a chart needs them)."""
    rows = _day_rollups(organization_id, since, until).values("bucket_start").annotate(**_sums()).order_by()
    found = {row["bucket_start"].astimezone(UTC).date(): UsageTotals.of(row) for row in rows}
    count = (until - since).days
    days = [since + timedelta(days=offset) for offset in range(count)]
    return [DayUsage(day=day, totals=found.get(day, UsageTotals.of({}))) for day in days]


@dataclass(frozen=True)
class HourUsage:
    hour: datetime  # the UTC hour's start
    totals: UsageTotals


def usage_by_hour(*, organization_id: int, since: datetime, until: datetime) -> list[HourUsage]:
    """One entry per UTC hour in [since, until) (both rounded down to the hour), hours without requests included."""
    since, until = _hour_floor(since), _hour_floor(until)
    rows = (
        UsageRollup.objects.filter(
            organization_id=organization_id,
            granularity=Granularity.HOUR,
            bucket_start__gte=since,
            bucket_start__lt=until,
        )
        .values("bucket_start")
        .annotate(**_sums())
        .order_by()
    )
    found = {row["bucket_start"].astimezone(UTC): UsageTotals.of(row) for row in rows}
    count = int((until - since).total_seconds() // 3600)
    hours = [since + timedelta(hours=offset) for offset in range(count)]
    return [HourUsage(hour=hour, totals=found.get(hour, UsageTotals.of({}))) for hour in hours]


def usage_by_key(*, organization_id: int, since: date, until: date) -> list[KeyUsage]:
    """Per key with requests in the period, busiest first."""
    rows = list(_day_rollups(organization_id, since, until).values("key_id").annotate(**_sums()).order_by())
    found = ApiKey.objects.filter(organization_id=organization_id, pk__in=[row["key_id"] for row in rows])
    keys = {key.pk: key for key in found}
    usage = [
        KeyUsage(
            key_id=row["key_id"],
            name=keys[row["key_id"]].name if row["key_id"] in keys else "",
            masked=keys[row["key_id"]].masked if row["key_id"] in keys else "",
            totals=UsageTotals.of(row),
        )
        for row in rows
    ]
    return sorted(usage, key=lambda item: (-item.totals.requests, item.key_id))


def usage_by_model(*, organization_id: int, since: date, until: date) -> list[ModelUsage]:
    """Per model alias asked for in the period, busiest first."""
    rows = _day_rollups(organization_id, since, until).values("model").annotate(**_sums()).order_by()
    usage = [ModelUsage(model=row["model"], totals=UsageTotals.of(row)) for row in rows]
    return sorted(usage, key=lambda item: (-item.totals.requests, item.model))


def usage_events_recent(
    *,
    organization_id: int,
    key_id: int | None = None,
    model: str | None = None,
    outcome: str | None = None,
    error_code: str | None = None,
    request_id: str | None = None,
) -> QuerySet[UsageEvent]:
    """The request log, newest first; each filter narrows it."""
    events = UsageEvent.objects.filter(organization_id=organization_id).exclude(stage="")
    if key_id is not None:
        events = events.filter(api_key_id=key_id)
    if model:
        events = events.filter(model=model)
    if outcome:
        events = events.filter(outcome=outcome)
    if error_code:
        # No index of its own: the organization's time index bounds the scan, as for a rare outcome.
        events = events.filter(error_code=error_code)
    if request_id:
        events = events.filter(request_id=request_id)
    return events.select_related("api_key").order_by("-started_at", "-id")


def usage_event_for_request(*, organization_id: int, request_id: str) -> UsageEvent | None:
    """Support's question for one request id: was it accepted, forwarded, completed, recorded?"""
    if "\x00" in request_id:  # the page's URL takes any text; PostgreSQL refuses NUL in a query (no id holds one)
        return None
    return usage_events_recent(organization_id=organization_id, request_id=request_id).first()


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
