"""The operators' admin for the ledger and upgrade requests: grants go through the service (audited), nothing is
edited or deleted, and requests are closed with an audited action."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Organization, User
from billing.ledger import MICRO, ledger_grant
from billing.models import LedgerEntry, LedgerKind, UpgradeRequest, UpgradeStatus
from billing.statements import ledger_balance
from tests.factories import OperatorFactory, UpgradeRequestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(db: None) -> User:
    return OperatorFactory()


@pytest.fixture
def operator(ops: User) -> Client:
    client = Client()
    client.force_login(ops)
    return client


def test_an_operator_grants_credits_and_it_is_audited(operator: Client, ops: User, org: Organization) -> None:
    response = operator.post(
        reverse("admin:billing_ledgerentry_add"),
        {"organization": org.pk, "kind": "grant", "amount": "12.5", "memo": "Design partner"},
    )
    assert response.status_code == 302
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount_micro, entry.created_by, entry.memo) == (
        LedgerKind.GRANT,
        12_500_000,
        ops,
        "Design partner",
    )
    event = AuditEvent.objects.get(action="ledger.grant")
    assert (event.actor, event.organization, event.target) == (ops, org, f"ledger:{entry.pk}")
    assert ledger_balance(organization_id=org.pk) == 12_500_000


@pytest.mark.parametrize(
    ("kind", "amount", "memo", "message"),
    [
        ("grant", "-3", "Oops", "enter a positive amount"),
        ("adjustment", "0", "Nothing", "zero changes nothing"),
        ("grant", "5", "", "This field is required"),
        ("grant", "0.0000001", "Too fine", "decimal places"),
    ],
)
def test_the_grant_form_explains_what_is_wrong(
    operator: Client, org: Organization, kind: str, amount: str, memo: str, message: str
) -> None:
    response = operator.post(
        reverse("admin:billing_ledgerentry_add"), {"organization": org.pk, "kind": kind, "amount": amount, "memo": memo}
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_an_adjustment_may_take_credits_away(operator: Client, ops: User, org: Organization) -> None:
    ledger_grant(organization=org, amount_micro=5 * MICRO, memo="Trial", actor=ops)
    operator.post(
        reverse("admin:billing_ledgerentry_add"),
        {"organization": org.pk, "kind": "adjustment", "amount": "-2", "memo": "Granted twice by mistake"},
    )
    assert ledger_balance(organization_id=org.pk) == 3 * MICRO
    assert AuditEvent.objects.filter(action="ledger.adjustment", actor=ops).exists()


def test_entries_are_listed_read_only(operator: Client, ops: User, org: Organization) -> None:
    entry = ledger_grant(organization=org, amount_micro=MICRO, memo="Trial", actor=ops)
    listing = operator.get(reverse("admin:billing_ledgerentry_changelist"), {"q": "acme"})
    assert listing.status_code == 200 and "Trial" in listing.content.decode()
    change_url = reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    page = operator.get(change_url).content.decode()
    assert 'name="_save"' not in page  # a view, not a form
    operator.post(change_url, {"organization": org.pk, "kind": "grant", "amount_micro": 99 * MICRO, "memo": "x"})
    assert operator.get(reverse("admin:billing_ledgerentry_delete", args=[entry.pk])).status_code == 403
    assert LedgerEntry.objects.get().amount_micro == MICRO


def test_closing_upgrade_requests_is_audited(operator: Client, ops: User, org: Organization) -> None:
    request = UpgradeRequestFactory(organization=org)
    response = operator.post(
        reverse("admin:billing_upgraderequest_changelist"),
        {"action": "close_requests", "_selected_action": [request.pk]},
        follow=True,
    )
    assert "Closed 1 request." in response.content.decode()
    request = UpgradeRequest.objects.get()
    assert (request.status, request.closed_by) == (UpgradeStatus.CLOSED, ops)
    assert AuditEvent.objects.filter(action="plan.upgrade_request_close", actor=ops, organization=org).exists()
