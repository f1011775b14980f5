"""Usage in the ledger: each closed period charged once, from the roll-ups, at the price of the plan in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization
from billing.models import LedgerEntry, LedgerKind, Plan
from billing.statements import ledger_balance
from metering.charges import UsagePeriodError, ledger_record_usage, ledger_record_usage_days
from metering.tasks import ledger_close_usage_periods
from tests.factories import DefaultPlanFactory, PlanFactory, SubscriptionFactory, usage_rollups_add

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 10, tzinfo=UTC)
LATER = DAY + timedelta(days=5)  # well after the day closed


@pytest.fixture
def free(db: None) -> Plan:
    return DefaultPlanFactory()


@pytest.fixture
def metered(db: None) -> Plan:
    return PlanFactory(slug="metered", name="Metered", unit_price_micro=2_000)  # 0.002 credits per unit


def record_day(org: Organization, day: datetime = DAY) -> tuple[LedgerEntry, bool]:
    return ledger_record_usage(organization=org, period_start=day, period_end=day + timedelta(days=1), now=LATER)


def test_a_closed_day_is_charged_at_the_plan_price(org: Organization, free: Plan, metered: Plan) -> None:
    SubscriptionFactory(organization=org, plan=metered, started_at=DAY - timedelta(days=30))
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=3), requests=4, cost_units=6)
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=20), model="chat-large", requests=2, cost_units=10)
    usage_rollups_add(organization=org, at=DAY + timedelta(days=1, hours=1), requests=50)  # the next day

    entry, created = record_day(org)

    assert created
    assert (entry.kind, entry.cost_units, entry.amount_micro) == (LedgerKind.USAGE, 16, -16 * 2_000)
    assert entry.memo == "Usage on 2026-03-10 (UTC): 16 units"
    assert ledger_balance(organization_id=org.pk) == -32_000


def test_free_usage_is_still_recorded_for_its_period(org: Organization, free: Plan) -> None:
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=9), requests=3)
    entry, _ = record_day(org)
    assert (entry.amount_micro, entry.cost_units) == (0, 3)
    assert (entry.period_start, entry.period_end) == (DAY, DAY + timedelta(days=1))


def test_recording_the_same_period_again_changes_nothing(org: Organization, free: Plan) -> None:
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=9), requests=3)
    first, _ = record_day(org)
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=10), requests=3)  # a late correction
    again, created = record_day(org)
    assert (created, again.pk, again.cost_units) == (False, first.pk, 3)
    assert LedgerEntry.objects.count() == 1


def test_the_database_refuses_a_second_charge_for_a_period(org: Organization, free: Plan) -> None:
    entry, _ = record_day(org)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            organization=org,
            kind=LedgerKind.USAGE,
            amount_micro=0,
            cost_units=0,
            period_start=entry.period_start,
            period_end=entry.period_end,
        )


def test_an_overlapping_period_is_refused(org: Organization, free: Plan) -> None:
    record_day(org)
    with pytest.raises(UsagePeriodError, match="already charged"):
        ledger_record_usage(
            organization=org, period_start=DAY + timedelta(hours=5), period_end=DAY + timedelta(hours=6), now=LATER
        )


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (DAY + timedelta(minutes=30), DAY + timedelta(hours=2), "whole UTC hours"),
        (DAY, DAY, "ends after it starts"),
        (LATER - timedelta(hours=1), LATER, "not closed"),
    ],
)
def test_only_closed_whole_hour_periods_are_charged(
    org: Organization, free: Plan, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(UsagePeriodError, match=message):
        ledger_record_usage(organization=org, period_start=start, period_end=end, now=LATER)
    assert not LedgerEntry.objects.exists()


def test_a_plan_change_during_the_day_prices_each_hour_at_its_plan(
    org: Organization, free: Plan, metered: Plan
) -> None:
    # Free until noon, then metered: only the afternoon's units cost anything.
    SubscriptionFactory(organization=org, plan=metered, started_at=DAY + timedelta(hours=12))
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=9), requests=5)
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=12, minutes=1), requests=3)
    entry, _ = record_day(org)
    assert (entry.cost_units, entry.amount_micro) == (8, -3 * 2_000)


def test_the_daily_task_records_each_period_once_even_if_it_runs_twice(org: Organization, free: Plan) -> None:
    two_days_ago = timezone.now() - timedelta(days=2)
    other = Organization.objects.create(name="Other", slug="other")
    usage_rollups_add(organization=org, at=two_days_ago, requests=4)
    usage_rollups_add(organization=other, at=two_days_ago, requests=1)
    Organization.objects.create(name="Idle", slug="idle")  # no usage: nothing to record

    first = ledger_close_usage_periods()
    second = ledger_close_usage_periods()

    assert (first, second) == (
        {"recorded": 2, "already": 0, "skipped": 0},
        {"recorded": 0, "already": 2, "skipped": 0},
    )
    charged = LedgerEntry.objects.filter(kind=LedgerKind.USAGE)
    assert sorted(charged.values_list("organization__slug", "cost_units")) == [("acme", 4), ("other", 1)]


def test_a_day_is_recorded_only_once_it_has_closed_and_settled(org: Organization, free: Plan) -> None:
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=23), requests=2)
    just_after = DAY + timedelta(days=1, minutes=5)  # metering may still be closing the day's last requests
    assert ledger_record_usage_days(days=1, now=just_after).recorded == 0
    report = ledger_record_usage_days(days=1, now=DAY + timedelta(days=1, hours=2))
    assert (report.recorded, report.days) == (1, [DAY.date()])


def test_a_missed_run_is_caught_up(org: Organization, free: Plan) -> None:
    for offset in range(3):
        usage_rollups_add(organization=org, at=DAY + timedelta(days=offset, hours=1), requests=offset + 1)
    report = ledger_record_usage_days(days=3, now=DAY + timedelta(days=3, hours=2))
    assert report.recorded == 3
    starts = list(LedgerEntry.objects.order_by("period_start").values_list("period_start", "cost_units"))
    assert starts == [(DAY + timedelta(days=offset), offset + 1) for offset in range(3)]


def test_a_day_partly_charged_by_hand_is_skipped_and_the_others_recorded(org: Organization, free: Plan) -> None:
    other = Organization.objects.create(name="Other", slug="other")
    usage_rollups_add(organization=org, at=DAY + timedelta(hours=1), requests=2)
    usage_rollups_add(organization=other, at=DAY + timedelta(hours=1), requests=5)
    ledger_record_usage(
        organization=org, period_start=DAY + timedelta(hours=1), period_end=DAY + timedelta(hours=2), now=LATER
    )
    report = ledger_record_usage_days(days=1, now=DAY + timedelta(days=1, hours=2))
    assert (report.recorded, report.skipped) == (1, 1)
    assert LedgerEntry.objects.get(organization=other).cost_units == 5


def test_the_beat_schedule_still_names_the_registered_charging_task() -> None:
    """The task moved from billing to metering under its first name: beat's entry and queued messages still find it."""
    from django.conf import settings

    from portal.celery import app

    app.loader.import_default_modules()
    scheduled = settings.CELERY_BEAT_SCHEDULE["billing-ledger-close-usage-periods"]["task"]
    assert scheduled == ledger_close_usage_periods.name == "billing.tasks.ledger_close_usage_periods"
    assert app.tasks[scheduled].run.__module__ == "metering.tasks"
