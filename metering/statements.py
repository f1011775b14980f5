"""Monthly statements: the billing ledger's entries of a UTC month beside metering's roll-ups for the same month.
Built here because it reads usage; the ledger's own reads (balance, history, which months exist) are
billing/statements.py, which imports no metering code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from accounts.models import Organization
from billing.ledger import usage_settle_seconds
from billing.models import LedgerEntry, LedgerKind, ledger_dated_at
from billing.statements import ledger_balance, month_bounds
from metering.selectors import ModelUsage, UsageTotals, usage_by_model, usage_totals


@dataclass(frozen=True)
class Statement:
    organization: Organization
    starts_at: datetime
    ends_at: datetime
    opening_micro: int
    entries: Sequence[LedgerEntry]  # each annotated with `dated_at`
    added_micro: int  # the sum of positive entries
    spent_micro: int  # the sum of negative entries (zero or negative)
    closing_micro: int
    usage: UsageTotals  # the month's roll-ups
    usage_by_model: list[ModelUsage]
    charged_units: int  # allowance units the month's usage entries priced
    charged_through: date | None  # the last UTC day whose usage is in the ledger
    is_final: bool  # the month has ended and settled: its numbers no longer change

    @property
    def last_day(self) -> date:
        return (self.ends_at - timedelta(days=1)).date()

    @property
    def uncharged_units(self) -> int:
        """Units the roll-ups hold that no usage entry has priced yet (days not recorded so far)."""
        return self.usage.cost_units - self.charged_units


def statement_for(*, organization: Organization, year: int, month: int, now: datetime | None = None) -> Statement:
    """One UTC month: opening balance, the entries dated in it, closing balance, and usage by model from roll-ups.

    Usage entries count for the period they charge, so the month's last day belongs to it even though it is
    recorded the next morning."""
    now = now or timezone.now()
    starts_at, ends_at = month_bounds(year, month)
    opening = ledger_balance(organization_id=organization.pk, before=starts_at)
    entries = list(
        LedgerEntry.objects.filter(organization=organization)
        .annotate(dated_at=ledger_dated_at())
        .filter(dated_at__gte=starts_at, dated_at__lt=ends_at)
        .select_related("created_by")
        .order_by("dated_at", "id")
    )
    added = sum(entry.amount_micro for entry in entries if entry.amount_micro > 0)
    spent = sum(entry.amount_micro for entry in entries if entry.amount_micro < 0)
    usage_entries = [entry for entry in entries if entry.kind == LedgerKind.USAGE]
    charged_end = LedgerEntry.objects.filter(
        organization=organization, kind=LedgerKind.USAGE, period_start__gte=starts_at, period_start__lt=ends_at
    ).aggregate(last=Max("period_end"))["last"]
    since, until = starts_at.date(), ends_at.date()
    return Statement(
        organization=organization,
        starts_at=starts_at,
        ends_at=ends_at,
        opening_micro=opening,
        entries=entries,
        added_micro=added,
        spent_micro=spent,
        closing_micro=opening + added + spent,
        usage=usage_totals(organization_id=organization.pk, since=since, until=until),
        usage_by_model=usage_by_model(organization_id=organization.pk, since=since, until=until),
        charged_units=sum(entry.cost_units or 0 for entry in usage_entries),
        charged_through=(charged_end - timedelta(seconds=1)).date() if charged_end is not None else None,
        is_final=now >= ends_at + timedelta(seconds=usage_settle_seconds()),
    )
