"""Plans and subscriptions: what a plan must satisfy, which plan an organization is on, and changing it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections

from accounts.models import AuditEvent, Organization, User
from billing.models import OverLimit, Plan, Subscription
from billing.selectors import (
    NoDefaultPlan,
    PlanSnapshot,
    aplan_snapshot_for_organization,
    plan_allows_model,
    plan_for_organization,
    plan_snapshot_for_organization,
    subscription_history,
)
from billing.services import PlanNotAvailable, plan_set_default, subscription_change
from portal.invalidation import add_local_listener, remove_local_listener
from tests.factories import DefaultPlanFactory, ModelAliasFactory, OrganizationFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def free(db: None) -> Plan:
    return DefaultPlanFactory()


@pytest.fixture
def pro(db: None) -> Plan:
    return PlanFactory(slug="pro", name="Pro", key_rate_requests=120, short_requests=3000, weekly_requests=20000)


@pytest.fixture
def published() -> Iterator[list[tuple[str, str]]]:
    messages: list[tuple[str, str]] = []

    def listener(topic: str, ident: str) -> None:
        messages.append((topic, ident))

    add_local_listener(listener)
    yield messages
    remove_local_listener(listener)


def clean_errors(plan: Plan) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        plan.full_clean()
    return caught.value.message_dict


# -- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"short_window_seconds": 604_800}, "short_window_seconds", "shorter than the weekly window"),
        ({"short_window_seconds": 700_000}, "short_window_seconds", "shorter than the weekly window"),
        ({"key_rate_requests": 0}, "key_rate_requests", "greater than or equal to 1"),
        ({"weekly_window_seconds": 0}, "weekly_window_seconds", "greater than or equal to 1"),
        ({"short_requests": 5000}, "short_requests", "cannot exceed the weekly allowance"),
        ({"over_limit": OverLimit.DEGRADE}, "degrade_to", "Name the model alias"),
        ({"is_default": True, "active": False}, "active", "must be active"),
    ],
)
def test_a_plan_that_could_not_be_enforced_is_refused(changes: dict[str, Any], field: str, message: str) -> None:
    plan = PlanFactory.build(slug="broken", name="Broken", all_models=True, **changes)
    errors = clean_errors(plan)
    assert any(message in text for text in errors[field]), errors


def test_a_degrade_target_is_set_exactly_when_the_plan_degrades() -> None:
    cheap = ModelAliasFactory(alias="gpt-oss-20b")
    plan = PlanFactory.build(slug="p", name="P", over_limit=OverLimit.DENY, degrade_to=cheap)
    assert "degrade_to" in clean_errors(plan)
    plan.over_limit = OverLimit.DEGRADE
    plan.full_clean()


def test_the_database_keeps_one_default_plan(free: Plan) -> None:
    with pytest.raises(IntegrityError):
        PlanFactory(slug="also-default", is_default=True)


@pytest.mark.parametrize(
    "changes", [{"short_window_seconds": 604_800}, {"weekly_requests": 0}, {"key_rate_requests": 0}]
)
def test_the_database_refuses_limits_that_could_not_be_enforced(changes: dict[str, int]) -> None:
    with pytest.raises(IntegrityError):
        PlanFactory(**changes)


# -- which plan ---------------------------------------------------------------------------------------------------


def test_a_new_organization_is_on_the_default_plan(free: Plan, pro: Plan) -> None:
    organization = OrganizationFactory()
    assert plan_for_organization(organization_id=organization.pk) == free


def test_a_subscribed_organization_is_on_its_plan(free: Plan, pro: Plan) -> None:
    subscription = SubscriptionFactory(plan=pro)
    assert plan_for_organization(organization_id=subscription.organization_id) == pro


def test_without_any_default_plan_the_operator_gets_a_clear_error(pro: Plan) -> None:
    with pytest.raises(NoDefaultPlan):
        plan_for_organization(organization_id=OrganizationFactory().pk)


def test_entitlement_follows_the_plans_models(free: Plan, pro: Plan) -> None:
    small, large = ModelAliasFactory(alias="gpt-oss-20b"), ModelAliasFactory(alias="gpt-oss-120b")
    limited = PlanFactory(slug="limited", models=[small])
    assert plan_allows_model(plan=limited, alias="gpt-oss-20b")
    assert not plan_allows_model(plan=limited, alias="gpt-oss-120b")
    assert plan_allows_model(plan=pro, alias=large.alias)
    assert plan_allows_model(plan=pro, alias="added-next-year"), "all models means future ones too"
    organization = SubscriptionFactory(plan=limited).organization
    snapshot = plan_snapshot_for_organization(organization_id=organization.pk)
    assert plan_allows_model(plan=snapshot, alias="gpt-oss-20b")
    assert not plan_allows_model(plan=snapshot, alias="gpt-oss-120b")


@pytest.mark.django_db(transaction=True)
def test_the_gateways_async_snapshot_matches_the_page_one() -> None:
    PlanFactory(slug="free", is_default=True, short_requests=50)
    organization = OrganizationFactory()

    async def load() -> PlanSnapshot:
        try:
            return await aplan_snapshot_for_organization(organization_id=organization.pk)
        finally:
            await sync_to_async(connections.close_all)()

    snapshot = asyncio.run(load())
    assert snapshot == plan_snapshot_for_organization(organization_id=organization.pk)
    assert snapshot.slug == "free" and snapshot.short_requests == 50 and snapshot.all_models


# -- changing plans -----------------------------------------------------------------------------------------------


def test_a_plan_change_keeps_history_writes_an_audit_event_and_tells_the_gateway(
    free: Plan,
    pro: Plan,
    owner: User,
    org: Organization,
    published: list[tuple[str, str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = subscription_change(organization=org, plan=pro, actor=owner, ip="203.0.113.9")
    assert plan_for_organization(organization_id=org.pk) == pro
    assert published == [("plan", str(org.pk))]
    event = AuditEvent.objects.get(action="plan.change")
    assert (event.actor, event.organization, event.ip) == (owner, org, "203.0.113.9")
    assert event.data == {"from": "free", "to": "pro", "was_default": True}

    second = subscription_change(organization=org, plan=free, actor=owner)
    history = list(subscription_history(organization_id=org.pk))
    assert [s.plan.slug for s in history] == ["free", "pro"]
    first.refresh_from_db()
    assert first.ended_at == second.started_at, "no gap and no overlap between periods"
    assert second.ended_at is None and second.changed_by == owner
    assert AuditEvent.objects.filter(action="plan.change").count() == 2


def test_changing_to_the_current_plan_changes_nothing(pro: Plan, owner: User, org: Organization) -> None:
    current = subscription_change(organization=org, plan=pro, actor=owner)
    assert subscription_change(organization=org, plan=pro, actor=owner) == current
    assert Subscription.objects.filter(organization=org).count() == 1
    assert AuditEvent.objects.filter(action="plan.change").count() == 1


def test_an_inactive_plan_takes_no_new_subscriptions(free: Plan, owner: User, org: Organization) -> None:
    retired = PlanFactory(slug="legacy", active=False)
    with pytest.raises(PlanNotAvailable):
        subscription_change(organization=org, plan=retired, actor=owner)
    assert plan_for_organization(organization_id=org.pk) == free


def test_an_organization_has_one_current_subscription(pro: Plan, free: Plan) -> None:
    subscription = SubscriptionFactory(plan=pro)
    with pytest.raises(IntegrityError):
        SubscriptionFactory(organization=subscription.organization, plan=free)


def test_moving_the_default_moves_every_unsubscribed_organization(
    free: Plan, pro: Plan, published: list[tuple[str, str]], django_capture_on_commit_callbacks: Any
) -> None:
    organization = OrganizationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        assert plan_set_default(plan=pro, actor=None) is True
    assert plan_for_organization(organization_id=organization.pk) == pro
    assert list(Plan.objects.filter(is_default=True)) == [pro]
    assert sorted(published) == [("plan", "free"), ("plan", "pro")]
    assert AuditEvent.objects.get(action="plan.default").data == {"from": ["free"], "to": "pro"}
