"""Usage charged into the billing ledger: each closed period priced once from metering's hourly roll-ups, at the
unit price of the plan in force, and written as a usage entry. Here rather than in billing because it reads usage;
billing owns the ledger and its other writes (billing/ledger.py) and imports no metering code.

Amounts are integer micro-units of a credit (billing.ledger.MICRO), so sums are exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Organization
from billing.ledger import LedgerError, usage_settle_seconds
from billing.models import LedgerEntry, LedgerKind, Plan, Subscription
from metering.models import Granularity, UsageRollup

logger = logging.getLogger(__name__)


class UsagePeriodError(LedgerError):
    """The usage period is not a closed, whole-hour period, or overlaps one already charged differently."""


@dataclass(frozen=True)
class UsageCharge:
    cost_units: int
    billed_requests: int
    amount_micro: int  # zero or negative


def usage_charge(*, organization_id: int, period_start: datetime, period_end: datetime) -> UsageCharge:
    """Price [period_start, period_end) from the hourly roll-ups, each hour at the unit price of the plan the
    organization was on when the hour began (a plan change mid-hour applies from the next hour)."""
    hours = (
        UsageRollup.objects.filter(
            organization_id=organization_id,
            granularity=Granularity.HOUR,
            bucket_start__gte=period_start,
            bucket_start__lt=period_end,
        )
        .values("bucket_start")
        .annotate(units=Sum("cost_units"), billed=Sum("billed_requests"))
        .order_by("bucket_start")
    )
    price_at = _unit_prices(organization_id=organization_id, period_start=period_start, period_end=period_end)
    units = billed = amount = 0
    for hour in hours:
        hour_units = int(hour["units"] or 0)
        units += hour_units
        billed += int(hour["billed"] or 0)
        amount -= hour_units * price_at(hour["bucket_start"])
    return UsageCharge(cost_units=units, billed_requests=billed, amount_micro=amount)


@dataclass
class _PriceLookup:
    periods: list[tuple[datetime, datetime | None, int]] = field(default_factory=list)  # newest first
    default: int = 0  # the default plan's price, for hours without a subscription

    def __call__(self, at: datetime) -> int:
        for started_at, ended_at, price in self.periods:
            if started_at <= at and (ended_at is None or at < ended_at):
                return price
        return self.default


def _unit_prices(*, organization_id: int, period_start: datetime, period_end: datetime) -> _PriceLookup:
    subscriptions = list(
        Subscription.objects.filter(organization_id=organization_id, started_at__lt=period_end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=period_start))
        .select_related("plan")
        .order_by("-started_at", "-id")
    )
    default = Plan.objects.filter(is_default=True).values_list("unit_price_micro", flat=True).first()
    return _PriceLookup(
        periods=[(s.started_at, s.ended_at, s.plan.unit_price_micro) for s in subscriptions], default=default or 0
    )


def _check_period(period_start: datetime, period_end: datetime, now: datetime) -> None:
    for moment in (period_start, period_end):
        if moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0) != moment:
            raise UsagePeriodError("Usage periods start and end on whole UTC hours, like the roll-ups.")
    if period_end <= period_start:
        raise UsagePeriodError("A usage period ends after it starts.")
    if period_end > now - timedelta(seconds=usage_settle_seconds()):
        raise UsagePeriodError("This period has not closed yet: its usage may still change.")


def _usage_memo(period_start: datetime, period_end: datetime, units: int) -> str:
    start, end = period_start.astimezone(UTC), period_end.astimezone(UTC)
    if start.hour == 0 and end - start == timedelta(days=1):
        when = f"on {start:%Y-%m-%d} (UTC)"
    else:
        when = f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"
    return f"Usage {when}: {units:,} unit{'s' if units != 1 else ''}"


@transaction.atomic
def ledger_record_usage(
    *, organization: Organization, period_start: datetime, period_end: datetime, now: datetime | None = None
) -> tuple[LedgerEntry, bool]:
    """Charge a closed period's usage once. Recording the same period again returns the first entry and False, so
    the daily task may run twice or catch up; a different period that overlaps a charged one is refused.

    The entry is written even when the usage is free (amount zero): the ledger then says which periods were counted.
    It is not audited: the system writes it from the roll-ups, with no actor, and the entry itself is the
    append-only record of the period."""
    _check_period(period_start, period_end, now or timezone.now())
    Organization.objects.select_for_update().filter(pk=organization.pk).first()  # one recorder per org at a time
    charged = LedgerEntry.objects.filter(organization=organization, kind=LedgerKind.USAGE)
    same = charged.filter(period_start=period_start, period_end=period_end).first()
    if same is not None:
        return same, False
    if charged.filter(period_start__lt=period_end, period_end__gt=period_start).exists():
        raise UsagePeriodError("Part of this period is already charged in another usage entry.")
    charge = usage_charge(organization_id=organization.pk, period_start=period_start, period_end=period_end)
    entry = LedgerEntry.objects.create(
        organization=organization,
        kind=LedgerKind.USAGE,
        amount_micro=charge.amount_micro,
        period_start=period_start,
        period_end=period_end,
        cost_units=charge.cost_units,
        memo=_usage_memo(period_start, period_end, charge.cost_units),
    )
    return entry, True


@dataclass
class UsageDaysReport:
    days: list[date] = field(default_factory=list)
    recorded: int = 0
    already: int = 0
    skipped: int = 0


def ledger_record_usage_days(*, days: int = 3, now: datetime | None = None) -> UsageDaysReport:
    """Charge every organization with roll-ups for each of the last `days` closed UTC days. A day closes once it has
    ended and settled (usage_settle_seconds); looking back more than one day lets a run catch up a missed one."""
    now = now or timezone.now()
    settled = (now - timedelta(seconds=usage_settle_seconds())).astimezone(UTC)
    last_end = settled.replace(hour=0, minute=0, second=0, microsecond=0)
    report = UsageDaysReport()
    for back in range(days, 0, -1):
        start = last_end - timedelta(days=back)
        report.days.append(start.date())
        organization_ids = (
            UsageRollup.objects.filter(granularity=Granularity.DAY, bucket_start=start)
            .values_list("organization_id", flat=True)
            .distinct()
            .order_by("organization_id")
        )
        for organization in Organization.objects.filter(pk__in=list(organization_ids)).order_by("pk"):
            try:
                _, created = ledger_record_usage(
                    organization=organization, period_start=start, period_end=start + timedelta(days=1), now=now
                )
            except UsagePeriodError as error:
                # An operator charged part of this day by hand: leave it to them, go on with the others.
                logger.warning("usage of %s on %s not recorded: %s", organization.slug, start.date(), error)
                report.skipped += 1
                continue
            if created:
                report.recorded += 1
            else:
                report.already += 1
    return report
