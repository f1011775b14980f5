"""Reading plans: which plan an organization is on, what it allows, and a cacheable snapshot for the gateway."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from billing.models import OverLimit, Plan, Subscription


class NoDefaultPlan(Exception):
    """No plan is marked default: an operator must make one the default (admin action or catalog `default: true`)."""


@dataclass(frozen=True)
class PlanSnapshot:
    """Everything the request path needs to know about a plan, immutable and free of database access."""

    id: int
    slug: str
    name: str
    key_rate_requests: int
    key_rate_window_seconds: int
    short_requests: int
    short_window_seconds: int
    weekly_requests: int
    weekly_window_seconds: int
    all_models: bool
    models: frozenset[str]  # entitled aliases when not all_models
    over_limit: str
    degrade_to: str | None  # alias name

    def allows(self, alias: str) -> bool:
        return self.all_models or alias in self.models

    @property
    def degrades(self) -> bool:
        return self.over_limit == OverLimit.DEGRADE and self.degrade_to is not None


def plan_default() -> Plan:
    plan = Plan.objects.filter(is_default=True).first()
    if plan is None:
        raise NoDefaultPlan("no plan is the default")
    return plan


def subscription_current(*, organization_id: int) -> Subscription | None:
    return (
        Subscription.objects.filter(organization_id=organization_id, ended_at__isnull=True)
        .select_related("plan")
        .first()
    )


def subscription_history(*, organization_id: int) -> QuerySet[Subscription]:
    """Every period of the organization on a plan, newest first (the current one, if any, leads)."""
    return (
        Subscription.objects.filter(organization_id=organization_id)
        .select_related("plan", "changed_by")
        .order_by("-started_at", "-id")
    )


def plan_for_organization(*, organization_id: int) -> Plan:
    """The current subscription's plan, or the default plan for an organization that has none."""
    current = subscription_current(organization_id=organization_id)
    return current.plan if current is not None else plan_default()


def plan_allows_model(*, plan: Plan | PlanSnapshot, alias: str) -> bool:
    if isinstance(plan, PlanSnapshot):
        return plan.allows(alias)
    if plan.all_models:
        return True
    return any(entitled.alias == alias for entitled in plan.entitled_models.all())  # uses a prefetch when there


def plan_snapshot(*, plan: Plan) -> PlanSnapshot:
    names = () if plan.all_models else [alias.alias for alias in plan.entitled_models.all()]
    return _snapshot(plan, names, plan.degrade_to.alias if plan.degrade_to is not None else None)


def plan_snapshot_for_organization(*, organization_id: int) -> PlanSnapshot:
    return plan_snapshot(plan=plan_for_organization(organization_id=organization_id))


async def aplan_snapshot_for_organization(*, organization_id: int) -> PlanSnapshot:
    """The async twin for the gateway (on cache misses only): at most three queries."""
    current = (
        await Subscription.objects.filter(organization_id=organization_id, ended_at__isnull=True)
        .select_related("plan__degrade_to")
        .afirst()
    )
    plan = current.plan if current is not None else None
    if plan is None:
        plan = await Plan.objects.filter(is_default=True).select_related("degrade_to").afirst()
        if plan is None:
            raise NoDefaultPlan("no plan is the default")
    names = [] if plan.all_models else [name async for name in plan.entitled_models.values_list("alias", flat=True)]
    return _snapshot(plan, names, plan.degrade_to.alias if plan.degrade_to is not None else None)


def _snapshot(plan: Plan, names: Iterable[str], degrade_to: str | None) -> PlanSnapshot:
    return PlanSnapshot(
        id=plan.pk,
        slug=plan.slug,
        name=plan.name,
        key_rate_requests=plan.key_rate_requests,
        key_rate_window_seconds=plan.key_rate_window_seconds,
        short_requests=plan.short_requests,
        short_window_seconds=plan.short_window_seconds,
        weekly_requests=plan.weekly_requests,
        weekly_window_seconds=plan.weekly_window_seconds,
        all_models=plan.all_models,
        models=frozenset(names),
        over_limit=plan.over_limit,
        degrade_to=degrade_to,
    )


def plans_offered() -> QuerySet[Plan]:
    """Active plans in display order, for the plans page."""
    return Plan.objects.filter(active=True).select_related("upgrade_to").order_by("sort_order", "id")
