"""Changing plans and subscriptions. Every change is audited and, once committed, tells the gateway workers to drop
their cached plan (topic "plan": an organization id after a subscription change, a plan slug after a plan edit),
so new limits apply to the next request."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from billing.models import Plan, Subscription
from portal.invalidation import publish_on_commit


class PlanNotAvailable(Exception):
    """The plan is inactive and takes no new subscriptions."""


def _actor(actor: User | None) -> User | None:
    return actor if actor is not None and actor.pk else None


@transaction.atomic
def subscription_change(
    *, organization: Organization, plan: Plan, actor: User | None, ip: str | None = None
) -> Subscription:
    """Move an organization to `plan` from now on: the current subscription ends, a new one starts, history stays.

    Changing to the plan it is already subscribed to changes nothing and returns the current subscription."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()  # one change per org at a time
    current = _current_locked(organization_id=organization.pk)
    if current is not None and current.plan_id == plan.pk:
        return current
    if not plan.active:
        raise PlanNotAvailable(f"the plan {plan.slug!r} is not active")
    now = timezone.now()
    previous = current.plan.slug if current is not None else None
    if current is not None:
        current.ended_at = now
        current.save(update_fields=["ended_at"])
    else:
        previous = _default_slug()
    subscription = Subscription.objects.create(
        organization=organization, plan=plan, started_at=now, changed_by=_actor(actor)
    )
    audit_record(
        action="plan.change",
        actor=actor,
        organization=organization,
        target=f"plan:{plan.slug}",
        data={"from": previous, "to": plan.slug, "was_default": current is None},
        ip=ip,
    )
    publish_on_commit("plan", str(organization.pk))
    return subscription


def _current_locked(*, organization_id: int) -> Subscription | None:
    return (
        Subscription.objects.select_for_update()
        .filter(organization_id=organization_id, ended_at__isnull=True)
        .select_related("plan")
        .first()
    )


def _default_slug() -> str | None:
    return Plan.objects.filter(is_default=True).values_list("slug", flat=True).first()


@transaction.atomic
def plan_save(*, plan: Plan, actor: User | None, ip: str | None = None, changed: Sequence[str] = ()) -> Plan:
    """Validate and save a plan edited by an operator (admin); organizations on it get the new limits at once."""
    creating = plan.pk is None
    plan.full_clean()
    plan.save()
    audit_record(
        action="plan.create" if creating else "plan.update",
        actor=actor,
        target=f"plan:{plan.slug}",
        data={"fields": list(changed)},
        ip=ip,
    )
    publish_on_commit("plan", plan.slug)
    return plan


@transaction.atomic
def plan_set_default(*, plan: Plan, actor: User | None, ip: str | None = None) -> bool:
    """Make `plan` the default (organizations without a subscription move to it). False if it already was."""
    if plan.is_default:
        return False
    if not plan.active:
        raise PlanNotAvailable(f"the plan {plan.slug!r} is not active and cannot be the default")
    previous = list(Plan.objects.select_for_update().filter(is_default=True))
    Plan.objects.filter(pk__in=[p.pk for p in previous]).update(is_default=False)
    plan.is_default = True
    plan.save(update_fields=["is_default"])
    audit_record(
        action="plan.default",
        actor=actor,
        target=f"plan:{plan.slug}",
        data={"from": [p.slug for p in previous], "to": plan.slug},
        ip=ip,
    )
    for changed in [*previous, plan]:
        publish_on_commit("plan", changed.slug)
    return True


@transaction.atomic
def plan_delete(*, plan: Plan, actor: User | None, ip: str | None = None) -> None:
    """Delete a plan nobody was ever on. The default plan and plans with history stay (deactivate them instead)."""
    if plan.is_default:
        raise PlanNotAvailable("the default plan cannot be deleted; make another plan the default first")
    if plan.subscriptions.exists():
        raise PlanNotAvailable("organizations have been on this plan; deactivate it instead of deleting it")
    slug = plan.slug
    plan.delete()
    audit_record(action="plan.delete", actor=actor, target=f"plan:{slug}", ip=ip)
    publish_on_commit("plan", slug)
