"""Writing the billing ledger: credits granted or adjusted by operators and top-ups from payments. Every write
appends a row; nothing here edits or deletes one. Usage is charged per closed period by metering/charges.py, which
reads metering's roll-ups (billing imports no usage code).

Amounts are integer micro-units of a credit (1 credit = 1,000,000), so sums are exact.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.audit import audit_record
from accounts.models import Organization, User
from billing.models import LedgerEntry, LedgerKind

MICRO = 1_000_000
MEMO_MAX = 200


class LedgerError(Exception):
    """A ledger write that cannot be made as asked; the message says why in the operator's words."""


def usage_settle_seconds() -> int:
    """How long after a period ends its usage is charged: metering must have closed its stale requests (the gateway
    timeout plus a margin, minutes) and ingested late events before the roll-ups are read."""
    return int(settings.BILLING_USAGE_SETTLE_SECONDS)


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
