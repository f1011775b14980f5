"""The billing ledger: balances are the sum of entries, entries name their source, and nobody edits history."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models.deletion import ProtectedError

from accounts.models import AuditEvent, Organization, User
from billing.ledger import MICRO, LedgerError, ledger_adjust, ledger_grant, ledger_top_up
from billing.models import LedgerEntry, LedgerKind
from billing.statements import ledger_balance, ledger_history
from tests.factories import OperatorFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db: None) -> User:
    return OperatorFactory()


def test_the_balance_is_the_sum_of_the_entries(org: Organization, operator: User) -> None:
    ledger_grant(organization=org, amount_micro=10 * MICRO, memo="Welcome credits", actor=operator)
    ledger_adjust(organization=org, amount_micro=-2_500_000, memo="Correction", actor=operator)
    ledger_top_up(organization=org, amount_micro=5 * MICRO, payment_ref="pay_1")
    amounts = list(LedgerEntry.objects.filter(organization=org).values_list("amount_micro", flat=True))
    assert ledger_balance(organization_id=org.pk) == sum(amounts) == 12_500_000
    history = ledger_history(organization_id=org.pk)
    assert [line.balance_after_micro for line in history] == [12_500_000, 7_500_000, 10_000_000]


def test_another_organizations_entries_do_not_count(org: Organization, operator: User) -> None:
    other = Organization.objects.create(name="Other", slug="other")
    ledger_grant(organization=other, amount_micro=7 * MICRO, memo="Trial", actor=operator)
    assert ledger_balance(organization_id=org.pk) == 0


def test_entries_cannot_be_changed_or_deleted_through_the_app(org: Organization, operator: User) -> None:
    entry = ledger_grant(organization=org, amount_micro=MICRO, memo="Trial", actor=operator)
    entry.amount_micro = 1_000 * MICRO
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount_micro=1_000 * MICRO)
    with pytest.raises(PermissionError):
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    assert ledger_balance(organization_id=org.pk) == MICRO


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's; SQLite relies on the model")
def test_the_database_refuses_to_change_or_delete_entries(org: Organization, operator: User) -> None:
    entry = ledger_grant(organization=org, amount_micro=MICRO, memo="Trial", actor=operator)
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_ledgerentry SET amount_micro = 999000000 WHERE id = %s", [entry.pk])
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM billing_ledgerentry WHERE id = %s", [entry.pk])
    assert ledger_balance(organization_id=org.pk) == MICRO


def test_history_keeps_its_organization_and_operator(org: Organization, operator: User) -> None:
    ledger_grant(organization=org, amount_micro=MICRO, memo="Trial", actor=operator)
    with pytest.raises(ProtectedError), transaction.atomic():
        org.delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        operator.delete()
    assert LedgerEntry.objects.get().created_by == operator


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": LedgerKind.GRANT, "amount_micro": MICRO},  # no operator
        {"kind": LedgerKind.GRANT, "amount_micro": -MICRO, "with_operator": True},  # a grant that takes
        {"kind": LedgerKind.ADJUSTMENT, "amount_micro": 0, "with_operator": True},
        {"kind": LedgerKind.TOP_UP, "amount_micro": MICRO},  # no payment reference
        {"kind": LedgerKind.USAGE, "amount_micro": 0, "cost_units": 0},  # no period
        {"kind": LedgerKind.USAGE, "amount_micro": MICRO, "cost_units": 1, "period": True},  # usage that adds
        {"kind": LedgerKind.GRANT, "amount_micro": MICRO, "with_operator": True, "payment_ref": "x"},  # two sources
        {"kind": "gift", "amount_micro": MICRO, "with_operator": True},
    ],
)
def test_the_database_refuses_an_entry_without_its_one_source(
    org: Organization, operator: User, fields: dict[str, object]
) -> None:
    from datetime import UTC, datetime

    values = dict(fields)
    if values.pop("with_operator", False):
        values["created_by"] = operator
    if values.pop("period", False):
        values["period_start"] = datetime(2026, 1, 1, tzinfo=UTC)
        values["period_end"] = datetime(2026, 1, 2, tzinfo=UTC)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(organization=org, **values)  # type: ignore[arg-type]
    assert not LedgerEntry.objects.exists()


def test_a_grant_is_audited_with_its_operator_and_reason(org: Organization, operator: User) -> None:
    entry = ledger_grant(
        organization=org, amount_micro=3 * MICRO, memo="  Conference   demo ", actor=operator, ip="10.0.0.9"
    )
    event = AuditEvent.objects.get(action="ledger.grant")
    assert (event.actor, event.organization, event.target, str(event.ip)) == (
        operator,
        org,
        f"ledger:{entry.pk}",
        "10.0.0.9",
    )
    assert event.data == {"amount_micro": 3 * MICRO, "memo": "Conference demo"}
    ledger_adjust(organization=org, amount_micro=-MICRO, memo="Over-granted", actor=operator)
    assert AuditEvent.objects.filter(action="ledger.adjustment", actor=operator, organization=org).exists()


@pytest.mark.parametrize(
    ("service", "amount", "memo", "message"),
    [
        (ledger_grant, 0, "Trial", "positive"),
        (ledger_grant, -MICRO, "Trial", "positive"),
        (ledger_adjust, 0, "Nothing", "zero"),
        (ledger_grant, MICRO, "   ", "memo"),
    ],
)
def test_grants_and_adjustments_refuse_what_makes_no_sense(
    org: Organization, operator: User, service: object, amount: int, memo: str, message: str
) -> None:
    with pytest.raises(LedgerError, match=message):
        service(organization=org, amount_micro=amount, memo=memo, actor=operator)  # type: ignore[operator]
    assert not LedgerEntry.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="ledger.").exists()


def test_a_payment_is_credited_once(org: Organization) -> None:
    first, created = ledger_top_up(organization=org, amount_micro=20 * MICRO, payment_ref="0xabc")
    again, created_again = ledger_top_up(organization=org, amount_micro=20 * MICRO, payment_ref="0xabc")
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert ledger_balance(organization_id=org.pk) == 20 * MICRO
    other = Organization.objects.create(name="Other", slug="other")
    with pytest.raises(LedgerError, match="already in the ledger"):
        ledger_top_up(organization=other, amount_micro=20 * MICRO, payment_ref="0xabc")
