"""The admission counters seen from the ledger: what each counter should hold, drift checks, and rebuilds.

The ledger's admitted, unrefunded requests (`billed`) with their booking time (`admitted_at_ms`) and cost are the
durable truth behind the fast counters: after Redis lost its state, replaying them into the admission engine's
`raise_sync` restores what `status` showed before (same buckets, same windows).

A correction only ever adds: each bucket becomes the larger of what the counter holds and what the ledger proves,
in one atomic call. The ledger is always behind the counters (requests admitted since it was read, or not yet
drained, are in the counters only), so a counter above the ledger is normal and left alone: lowering it to the
ledger would forget those requests and admit more than the limit. Units that must go back (a refund the gateway
could not make, an admission Redis ran after the gateway had refused the request) are given back by ingestion, once
(metering/ingest.py, `allowance_refund_rows`).

A plan change that alters a window starts that counter afresh (billing/allowances.py names counters by their
window), so a counter only replays requests admitted since its window length came into effect.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from apikeys.models import ApiKey, KeyStatus
from billing.admission import Limit, bucket_label, get_engine
from billing.allowances import (
    KEY_RATE,
    SHORT,
    WEEKLY,
    key_rate_limit,
    organization_limits,
    request_limits,
    scope_for,
)
from billing.models import Plan
from billing.selectors import NoDefaultPlan, PlanSnapshot, plan_snapshot_for_organization, subscription_history
from metering.ledger import LedgerRow, datetime_to_ms, ms_to_datetime
from metering.models import UsageEvent
from portal.redis import async_redis

log = logging.getLogger(__name__)

_WINDOW_FIELDS = {
    KEY_RATE: "key_rate_window_seconds",
    SHORT: "short_window_seconds",
    WEEKLY: "weekly_window_seconds",
}

Booking = tuple[int, int]  # (admitted_at_ms, cost units)

DEGRADED = "degraded"  # LifecycleEvent.allowance_class of a request served over the allowance by a cheaper model


@dataclass(frozen=True, slots=True)
class CounterCheck:
    organization_id: int
    limit: str  # Limit.name
    key: str  # Limit.key: which counter
    counter_used: int  # what the admission engine says
    ledger_used: int  # what the ledger says it should say
    corrected: bool = False

    @property
    def drift(self) -> int:
        return self.counter_used - self.ledger_used


@dataclass(frozen=True)
class OrganizationCounters:
    organization_id: int
    plan: PlanSnapshot
    counters: list[tuple[Limit, list[Booking]]]  # every counter of the organization, with the bookings it holds


def organization_counters(*, organization_id: int, now_ms: int) -> OrganizationCounters:
    """Every admission counter of an organization (its allowances and each key's rate limit) with the ledger's
    bookings that counter should hold at `now_ms`. Raises NoDefaultPlan if the organization has no plan."""
    plan = plan_snapshot_for_organization(organization_id=organization_id)
    org_limits = organization_limits(plan=plan)
    key_ids = set(
        ApiKey.objects.filter(organization_id=organization_id)
        .exclude(status=KeyStatus.REVOKED)
        .values_list("pk", flat=True)
    )
    probe = key_rate_limit(plan=plan, key_id=0)
    longest = max(limit.window_ms for limit in [*org_limits, probe])
    bookings: list[tuple[int, int, int, bool]] = [
        (key_id, at or 0, cost, allowance_class == DEGRADED)
        for key_id, at, cost, allowance_class in UsageEvent.objects.filter(
            organization_id=organization_id,
            billed=True,
            cost_units__gt=0,
            admitted_at_ms__gt=now_ms - 2 * longest,  # a unit is counted up to one bucket past its window
            started_at__gte=_index_bound(now_ms - 2 * longest),
        ).values_list("reported_key_id", "admitted_at_ms", "cost_units", "allowance_class")
    ]
    key_ids |= {key_id for key_id, _, _, _ in bookings if key_id}
    since = _counting_since(organization_id, [*org_limits, probe], now_ms)

    counters: list[tuple[Limit, list[Booking]]] = []
    for limit in org_limits:
        start = since[limit.name]
        # A degraded request is admitted against the key's rate limit only (gateway/completions.py).
        counters.append((limit, [(at, cost) for _, at, cost, degraded in bookings if at >= start and not degraded]))
    start = since[KEY_RATE]
    for key_id in sorted(key_ids):
        limit = key_rate_limit(plan=plan, key_id=key_id)
        counters.append((limit, [(at, cost) for key, at, cost, _ in bookings if key == key_id and at >= start]))
    return OrganizationCounters(organization_id=organization_id, plan=plan, counters=counters)


def ledger_used(limit: Limit, bookings: list[Booking], now_ms: int) -> int:
    """What the counter holds at `now_ms` by the engine's own bucket rule (billing/admission/window.py)."""
    return sum(cost for at, cost in bookings if bucket_label(at, limit.window_ms) + limit.window_ms > now_ms)


def allowance_check(*, organization_id: int, correct: bool, now_ms: int | None = None) -> list[CounterCheck]:
    """Compare every counter of the organization with the ledger and return those below it (they lost units); with
    `correct`, raise them to what the ledger proves. A counter above the ledger is not drift: it holds requests the
    ledger has not seen yet (module docstring)."""
    now = _now_ms() if now_ms is None else now_ms
    found = organization_counters(organization_id=organization_id, now_ms=now)
    engine = get_engine()
    scope = scope_for(organization_id)
    states = engine.status_sync(scope=scope, limits=[limit for limit, _ in found.counters], now_ms=now)
    checks: list[CounterCheck] = []
    for (limit, bookings), state in zip(found.counters, states, strict=True):
        want = ledger_used(limit, bookings, now)
        if state.degraded or state.used >= want:
            continue
        if correct:
            engine.raise_sync(scope=scope, limit=limit, events=bookings, now_ms=now)
        checks.append(CounterCheck(organization_id, limit.name, limit.key, state.used, want, corrected=correct))
    return checks


def allowance_rebuild(*, organization_id: int, now_ms: int | None = None) -> int:
    """Bring every admission counter of the organization up to the ledger (after Redis lost them, or at the start of
    an embedded process). Returns how many counters were written. Drain the stream first, or requests still in it
    are left out until the next reconciliation adds them."""
    now = _now_ms() if now_ms is None else now_ms
    found = organization_counters(organization_id=organization_id, now_ms=now)
    engine = get_engine()
    scope = scope_for(organization_id)
    for limit, bookings in found.counters:
        engine.raise_sync(scope=scope, limit=limit, events=bookings, now_ms=now)
    return len(found.counters)


def allowance_refund_rows(rows: Sequence[LedgerRow]) -> None:
    """Give the units of these ledger rows back to the admission counters: requests closed as unknown with the refund
    policy on, and requests refused after Redis had booked them late. Call it after the commit that marked them
    refunded (a replay then finds them marked, and nothing is given back twice)."""
    refunds: list[tuple[str, list[Limit], int, int]] = []
    for row in rows:
        try:
            plan = plan_snapshot_for_organization(organization_id=row.organization_id)
        except NoDefaultPlan:
            continue
        limits = request_limits(plan=plan, key_id=row.reported_key_id)
        if row.allowance_class == DEGRADED:
            limits = limits[:1]  # admitted against the key's rate limit only
        refunds.append((scope_for(row.organization_id), limits, row.cost_units, row.admitted_at_ms or 0))

    async def refund_all() -> None:
        engine = get_engine()
        try:
            for scope, limits, cost, admitted_at_ms in refunds:
                await engine.refund(scope=scope, limits=limits, cost=cost, admitted_at_ms=admitted_at_ms)
        finally:
            client = async_redis()
            if client is not None:
                await client.aclose()  # the client belongs to this short-lived event loop

    asyncio.run(refund_all())


def organizations_with_bookings(*, now_ms: int | None = None) -> list[int]:
    """Organizations whose ledger holds bookings that may still be inside a window of any plan."""
    now = _now_ms() if now_ms is None else now_ms
    longest_s = Plan.objects.aggregate(longest=Max("weekly_window_seconds"))["longest"] or 0
    since = now - 2 * longest_s * 1000
    return sorted(
        UsageEvent.objects.filter(
            billed=True, cost_units__gt=0, admitted_at_ms__gt=since, started_at__gte=_index_bound(since)
        )
        .values_list("organization_id", flat=True)
        .distinct()
        .order_by()
    )


def allowance_rebuild_all(*, now_ms: int | None = None) -> int:
    """Rebuild the counters of every organization with bookings in a window. Returns how many organizations."""
    now = _now_ms() if now_ms is None else now_ms
    rebuilt = 0
    for organization_id in organizations_with_bookings(now_ms=now):
        try:
            allowance_rebuild(organization_id=organization_id, now_ms=now)
        except NoDefaultPlan:
            log.error("organization %s has no plan; its counters were not rebuilt", organization_id)
            continue
        rebuilt += 1
    return rebuilt


def _counting_since(organization_id: int, limits: list[Limit], now_ms: int) -> dict[str, int]:
    """Per limit name: since when (ms) the organization's plans have had this limit's current window length. Plan
    history comes from subscriptions; edits of a plan's windows in place are not recorded and so not seen here."""
    history = list(subscription_history(organization_id=organization_id))
    default = Plan.objects.filter(is_default=True).first() if history else None
    since: dict[str, int] = {}
    for limit in limits:
        start = 0
        window_field = _WINDOW_FIELDS[limit.name]
        for subscription in history:  # newest first
            if getattr(subscription.plan, window_field) * 1000 != limit.window_ms:
                # The window changed when the next (later) subscription started, i.e. when this one ended.
                start = datetime_to_ms(subscription.ended_at) if subscription.ended_at else now_ms
                break
        else:
            # Before its first subscription the organization was on the default plan.
            if default is not None and getattr(default, window_field) * 1000 != limit.window_ms:
                start = datetime_to_ms(history[-1].started_at)
        since[limit.name] = start
    return since


def _index_bound(admitted_after_ms: int) -> datetime:
    """A started_at bound for a query on admission time, so it can use the (organization, started_at) index: a row
    starts when its first event was written, a moment after admission, never an hour after."""
    return ms_to_datetime(admitted_after_ms) - timedelta(hours=1)


def _now_ms() -> int:
    return datetime_to_ms(timezone.now())
