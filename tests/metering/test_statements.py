"""Monthly statements: the balance carried in and out, the month's entries, and usage by model from the roll-ups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Organization, User
from billing.models import LedgerKind, Plan
from billing.statements import ledger_balance
from metering.charges import ledger_record_usage_days
from metering.statements import statement_for
from tests.factories import (
    DefaultPlanFactory,
    OperatorEntryFactory,
    PlanFactory,
    SubscriptionFactory,
    usage_rollups_add,
)

pytestmark = [pytest.mark.django_db]

PRICE = 1_000  # micro-credits per unit
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def metered(org: Organization) -> Plan:
    DefaultPlanFactory()
    plan = PlanFactory(slug="metered", name="Metered", unit_price_micro=PRICE)
    SubscriptionFactory(organization=org, plan=plan, started_at=datetime(2026, 1, 1, tzinfo=UTC))
    return plan


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_statement_numbers_equal_the_rollups_and_the_entries(org: Organization, owner: User, metered: Plan) -> None:
    Organization.objects.filter(pk=org.pk).update(created_at=datetime(2026, 1, 15, tzinfo=UTC))
    OperatorEntryFactory(organization=org, amount_micro=10_000_000, created_at=datetime(2026, 1, 20, tzinfo=UTC))
    OperatorEntryFactory(
        organization=org,
        kind=LedgerKind.ADJUSTMENT,
        amount_micro=-1_000_000,
        memo="Correction",
        created_at=FEB + timedelta(days=2),
    )
    OperatorEntryFactory(organization=org, amount_micro=5_000_000, created_at=MAR + timedelta(days=1))
    usage_rollups_add(organization=org, at=FEB - timedelta(hours=1), requests=7)  # 31 January
    usage_rollups_add(organization=org, at=FEB, requests=2, prompt_tokens=10, completion_tokens=20)
    usage_rollups_add(
        organization=org, at=FEB + timedelta(days=13), model="chat-large", requests=4, billed_requests=3, cost_units=6
    )
    usage_rollups_add(organization=org, at=MAR - timedelta(minutes=1), requests=1, completion_tokens=5)  # 28 Feb
    usage_rollups_add(organization=org, at=MAR, requests=100)  # March
    # Every day up to 1 March is charged on 2 March (the last day of February among them).
    assert ledger_record_usage_days(days=31, now=MAR + timedelta(days=1, hours=2)).recorded == 5

    statement = statement_for(organization=org, year=2026, month=2, now=datetime(2026, 4, 1, tzinfo=UTC))

    assert statement.opening_micro == 10_000_000 - 7 * PRICE == ledger_balance(organization_id=org.pk, before=FEB)
    assert [(entry.kind, entry.amount_micro) for entry in statement.entries] == [
        (LedgerKind.USAGE, -2 * PRICE),
        (LedgerKind.ADJUSTMENT, -1_000_000),
        (LedgerKind.USAGE, -6 * PRICE),
        (LedgerKind.USAGE, -1 * PRICE),
    ]
    assert (statement.added_micro, statement.spent_micro) == (0, -1_000_000 - 9 * PRICE)
    assert statement.closing_micro == statement.opening_micro + statement.spent_micro
    assert statement.closing_micro == ledger_balance(organization_id=org.pk, before=MAR)
    by_model = {
        row.model: (row.totals.requests, row.totals.billed_requests, row.totals.cost_units)
        for row in statement.usage_by_model
    }
    assert by_model == {"chat-small": (3, 3, 3), "chat-large": (4, 3, 6)}
    assert (statement.usage.prompt_tokens, statement.usage.completion_tokens) == (10, 25)
    assert statement.usage.cost_units == statement.charged_units == 9
    assert (statement.uncharged_units, statement.is_final) == (0, True)
    assert statement.charged_through == datetime(2026, 2, 28).date()


def test_an_open_month_says_what_is_not_noted_yet(org: Organization, metered: Plan) -> None:
    usage_rollups_add(organization=org, at=MAR + timedelta(hours=5), requests=2)
    usage_rollups_add(organization=org, at=MAR + timedelta(days=1, hours=5), requests=3)  # today, still open
    now = MAR + timedelta(days=1, hours=6)
    ledger_record_usage_days(days=1, now=now)
    statement = statement_for(organization=org, year=2026, month=3, now=now)
    assert (statement.is_final, statement.charged_through, statement.uncharged_units) == (False, MAR.date(), 3)


def months_ago(count: int) -> datetime:
    start = timezone.now().astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(count):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def test_members_read_the_statement_page(org: Organization, owner: User, member: User, metered: Plan) -> None:
    month = months_ago(2)
    Organization.objects.filter(pk=org.pk).update(created_at=month - timedelta(days=40))
    OperatorEntryFactory(
        organization=org, amount_micro=2_500_000, memo="Launch gift", created_at=month + timedelta(days=3)
    )
    usage_rollups_add(
        organization=org, at=month + timedelta(days=4), model="chat-large", requests=12, prompt_tokens=345
    )
    url = f"/orgs/acme/plan/statements/{month:%Y/%m}/"

    page = as_user(member).get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert f"{month:%B %Y}" in text
    assert "Launch gift" in text and "+2.5" in text
    assert "chat-large" in text and "<td>12</td>" in text and "<td>345</td>" in text
    assert "2.5 credits" in text  # nothing charged yet: the balance at the end is the gift


def test_statement_pages_exist_only_for_the_organizations_months(
    org: Organization, owner: User, outsider: User
) -> None:
    client = as_user(owner)
    this_month = months_ago(0)
    assert client.get(f"/orgs/acme/plan/statements/{this_month:%Y/%m}/").status_code == 200
    next_month = (this_month + timedelta(days=32)).replace(day=1)
    assert client.get(f"/orgs/acme/plan/statements/{next_month:%Y/%m}/").status_code == 404
    before = months_ago(1)  # the organization was created this month
    assert client.get(f"/orgs/acme/plan/statements/{before:%Y/%m}/").status_code == 404
    assert client.get(f"/orgs/acme/plan/statements/{this_month:%Y}/13/").status_code == 404
    assert as_user(outsider).get(f"/orgs/acme/plan/statements/{this_month:%Y/%m}/").status_code == 404


def test_moving_between_months_with_htmx_swaps_only_the_statement(org: Organization, owner: User) -> None:
    Organization.objects.filter(pk=org.pk).update(created_at=months_ago(3))
    month = months_ago(1)
    response = as_user(owner).get(f"/orgs/acme/plan/statements/{month:%Y/%m}/", headers={"HX-Request": "true"})
    text = response.content.decode()
    assert f"{month:%B %Y}" in text and "<html" not in text
    assert f"/orgs/acme/plan/statements/{months_ago(2):%Y/%m}/" in text  # the older month
    assert f"/orgs/acme/plan/statements/{months_ago(0):%Y/%m}/" in text  # the newer one
