"""Upgrade intents: an owner asks to move to another plan; an operator follows up and closes the request.

Payment comes later, so a request changes nothing by itself: the plan moves only when an operator changes the
subscription (billing.services.subscription_change)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from billing.models import Plan, UpgradeRequest, UpgradeStatus
from billing.selectors import NoDefaultPlan, plan_for_organization

NOTE_MAX = 500


class UpgradeError(Exception):
    """The request cannot be made as asked; the message says why in the owner's words."""


@transaction.atomic
def upgrade_request(
    *, organization: Organization, to_plan: Plan, actor: User, note: str = "", ip: str | None = None
) -> UpgradeRequest:
    """Record that the organization wants `to_plan`. One open request per organization and plan."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()  # one request at a time per org
    if not to_plan.active:
        raise UpgradeError(f"{to_plan.name} is not offered any more.")
    try:
        current: Plan | None = plan_for_organization(organization_id=organization.pk)
    except NoDefaultPlan:
        current = None
    if current is not None and current.pk == to_plan.pk:
        raise UpgradeError(f"{organization.name} is already on {to_plan.name}.")
    existing = upgrade_request_open(organization=organization, to_plan=to_plan)
    if existing is not None:
        raise UpgradeError(
            f"{to_plan.name} was already requested on {existing.created_at:%Y-%m-%d}; we will be in touch."
        )
    request = UpgradeRequest.objects.create(
        organization=organization,
        from_plan=current,
        to_plan=to_plan,
        requested_by=actor,
        note=note.strip()[:NOTE_MAX],
    )
    audit_record(
        action="plan.upgrade_request",
        actor=actor,
        organization=organization,
        target=f"plan:{to_plan.slug}",
        data={"from": current.slug if current is not None else None, "to": to_plan.slug, "request": request.pk},
        ip=ip,
    )
    return request


@transaction.atomic
def upgrade_request_close(*, request: UpgradeRequest, actor: User | None, ip: str | None = None) -> bool:
    """Close an open request (the operator followed up). False if it was already closed."""
    locked = UpgradeRequest.objects.select_for_update().select_related("organization", "to_plan").get(pk=request.pk)
    if locked.status == UpgradeStatus.CLOSED:
        return False
    locked.status = UpgradeStatus.CLOSED
    locked.closed_at = timezone.now()
    locked.closed_by = actor if actor is not None and actor.pk else None
    locked.save(update_fields=["status", "closed_at", "closed_by"])
    audit_record(
        action="plan.upgrade_request_close",
        actor=actor,
        organization=locked.organization,
        target=f"plan:{locked.to_plan.slug}",
        data={"request": locked.pk},
        ip=ip,
    )
    return True


def upgrade_request_open(*, organization: Organization, to_plan: Plan) -> UpgradeRequest | None:
    return UpgradeRequest.objects.filter(organization=organization, to_plan=to_plan, status=UpgradeStatus.OPEN).first()


def upgrade_requests_open(*, organization: Organization) -> QuerySet[UpgradeRequest]:
    return (
        UpgradeRequest.objects.filter(organization=organization, status=UpgradeStatus.OPEN)
        .select_related("to_plan", "requested_by")
        .order_by("-created_at", "-id")
    )
