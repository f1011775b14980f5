"""Reading the billing ledger: the balance (always the sum of entries), the history, the UTC months a statement
covers and which months have one. The statement itself sets the entries beside metering's roll-ups, so it is built
in metering/statements.py (billing imports no usage code)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db.models import Sum
from django.utils import timezone

from accounts.models import Organization
from billing.models import LedgerEntry, ledger_dated_at


def ledger_balance(*, organization_id: int, before: datetime | None = None) -> int:
    """The organization's balance in micro-credits: the sum of its entries (dated before `before`, if given)."""
    entries = LedgerEntry.objects.filter(organization_id=organization_id)
    if before is not None:
        entries = entries.annotate(dated_at=ledger_dated_at()).filter(dated_at__lt=before)
    return int(entries.aggregate(total=Sum("amount_micro"))["total"] or 0)


@dataclass(frozen=True)
class HistoryLine:
    entry: LedgerEntry
    balance_after_micro: int


def ledger_history(*, organization_id: int, limit: int = 50) -> list[HistoryLine]:
    """The newest entries first, each with the balance just after it (entries in the order they count for)."""
    entries = list(
        LedgerEntry.objects.filter(organization_id=organization_id)
        .annotate(dated_at=ledger_dated_at())
        .select_related("created_by")
        .order_by("-dated_at", "-id")[:limit]
    )
    balance = ledger_balance(organization_id=organization_id)
    lines = []
    for entry in entries:
        lines.append(HistoryLine(entry=entry, balance_after_micro=balance))
        balance -= entry.amount_micro
    return lines


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """The UTC month [start, end): the roll-ups' days, so entries and usage are cut at the same instant."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def statement_months(*, organization: Organization, now: datetime | None = None, limit: int = 12) -> list[date]:
    """The months with a statement, newest first: from the organization's first month to the current one."""
    now = (now or timezone.now()).astimezone(UTC)
    first = organization.created_at.astimezone(UTC)
    months: list[date] = []
    year, month = now.year, now.month
    while (year, month) >= (first.year, first.month) and len(months) < limit:
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months


def statement_exists(*, organization: Organization, year: int, month: int, now: datetime | None = None) -> bool:
    """A statement exists from the organization's first month up to the current month."""
    now = (now or timezone.now()).astimezone(UTC)
    first = organization.created_at.astimezone(UTC)
    return (first.year, first.month) <= (year, month) <= (now.year, now.month) and 1 <= month <= 12
