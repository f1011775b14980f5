"""Writing the billing ledger: credits granted or adjusted by operators, top-ups from payments, and usage charged per
closed period from metering's roll-ups. Every write appends a row; nothing here edits or deletes one.

Amounts are integer micro-units of a credit (1 credit = 1,000,000), so sums are exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from billing.models import LedgerEntry, LedgerKind, Plan, Subscription
from metering.models import Granularity, UsageRollup

logger = logging.getLogger(__name__)

MICRO = 1_000_000
MEMO_MAX = 200


class LedgerError(Exception):
    """A ledger write that cannot be made as asked; the message says why in the operator's words."""


class UsagePeriodError(LedgerError):
    """The usage period is not a closed, whole-hour period, or overlaps one already charged differently."""


def usage_settle_seconds() -> int:
    """How long after a period ends its usage is charged: metering must have closed its stale requests (the gateway
    timeout plus a margin, minutes) and ingested late events before the roll-ups are read."""
    return int(getattr(settings, "BILLING_USAGE_SETTLE_SECONDS", 3600))


def _memo(memo: str) -> str:
    return " ".join(memo.split())[:MEMO_MAX]


def _operator(actor: User | None) -> User:
    if actor is None or not actor.pk:
        raise LedgerError("Grants and adjustments name the operator who makes them.")
    return actor


@transaction.atomic
def ledger_grant(
    *, organization: Organization, amount_micro: int, memo: str, actor: User, ip: str | None = None
) -> LedgerEntry:
    """Give an organization credits (an operator's decision, e.g. a trial or a goodwill gesture)."""
    if amount_micro <= 0:
        raise LedgerError("A grant adds credits: the amount must be positive.")
    return _append_by_operator(LedgerKind.GRANT, organization, amount_micro, memo, actor, ip)


@transaction.atomic
def ledger_adjust(
    *, organization: Organization, amount_micro: int, memo: str, actor: User, ip: str | None = None
) -> LedgerEntry:
    """Correct the balance either way; the way to undo a mistaken entry, since entries are never edited."""
    if amount_micro == 0:
        raise LedgerError("An adjustment of zero changes nothing.")
    return _append_by_operator(LedgerKind.ADJUSTMENT, organization, amount_micro, memo, actor, ip)


def _append_by_operator(
    kind: LedgerKind, organization: Organization, amount_micro: int, memo: str, actor: User, ip: str | None
) -> LedgerEntry:
    operator = _operator(actor)
    memo = _memo(memo)
    if not memo:
        raise LedgerError("Say why in the memo: the organization sees it in its history.")
    entry = LedgerEntry.objects.create(
        organization=organization, kind=kind, amount_micro=amount_micro, memo=memo, created_by=operator
    )
    audit_record(
        action=f"ledger.{kind}",
        actor=operator,
        organization=organization,
        target=f"ledger:{entry.pk}",
        data={"amount_micro": amount_micro, "memo": memo},
        ip=ip,
    )
    return entry


@transaction.atomic
def ledger_top_up(
    *,
    organization: Organization,
    amount_micro: int,
    payment_ref: str,
    memo: str = "",
    actor: User | None = None,
    ip: str | None = None,
) -> tuple[LedgerEntry, bool]:
    """Credit a received payment once: the same payment reference again returns the first entry and False.

    For the payment integration that comes later; the reference is the payment's id at its processor or chain."""
    payment_ref = payment_ref.strip()
    if not payment_ref:
        raise LedgerError("A top-up names its payment.")
    if amount_micro <= 0:
        raise LedgerError("A top-up adds credits: the amount must be positive.")
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    existing = LedgerEntry.objects.filter(kind=LedgerKind.TOP_UP, payment_ref=payment_ref).first()
    if existing is not None:
        if existing.organization_id != organization.pk or existing.amount_micro != amount_micro:
            raise LedgerError(f"The payment {payment_ref!r} is already in the ledger with other details.")
        return existing, False
    entry = LedgerEntry.objects.create(
        organization=organization,
        kind=LedgerKind.TOP_UP,
        amount_micro=amount_micro,
        memo=_memo(memo),
        payment_ref=payment_ref,
    )
    audit_record(
        action="ledger.top_up",
        actor=actor,
        organization=organization,
        target=f"ledger:{entry.pk}",
        data={"amount_micro": amount_micro, "payment_ref": payment_ref},
        ip=ip,
    )
    return entry, True


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
