"""The operators' admin for plans and subscriptions: validation they see, and changes that stick."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Organization
from billing.models import Plan, Subscription
from billing.selectors import plan_for_organization
from tests.factories import DefaultPlanFactory, OperatorFactory, PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(OperatorFactory())
    return client


@pytest.fixture
def free(db: None) -> Plan:
    return DefaultPlanFactory()


def plan_form(**changes: Any) -> dict[str, Any]:
    form = {
        "slug": "team",
        "name": "Team",
        "active": "on",
        "key_rate_requests": 60,
        "key_rate_window_seconds": 60,
        "short_requests": 1000,
        "short_window_seconds": 18000,
        "weekly_requests": 5000,
        "weekly_window_seconds": 604800,
        "all_models": "on",
        "over_limit": "deny",
        "price_text": "$20 / month",
        "description": "",
        "sort_order": 1,
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value is not None}


def test_an_operator_creates_a_plan_and_it_is_audited(operator: Client, free: Plan) -> None:
    response = operator.post(reverse("admin:billing_plan_add"), plan_form())
    assert response.status_code == 302
    team = Plan.objects.get(slug="team")
    assert (team.short_requests, team.weekly_requests, team.is_default) == (1000, 5000, False)
    assert AuditEvent.objects.filter(action="plan.create", target="plan:team").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"short_window_seconds": 604800}, "The short window must be shorter than the weekly window."),
        ({"key_rate_requests": 0}, "Ensure this value is greater than or equal to 1."),
        ({"over_limit": "degrade"}, "Name the model alias that serves requests over the allowance."),
    ],
)
def test_a_plan_that_could_not_be_enforced_is_refused_with_the_reason(
    operator: Client, free: Plan, changes: dict[str, Any], message: str
) -> None:
    response = operator.post(reverse("admin:billing_plan_add"), plan_form(**changes))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Plan.objects.filter(slug="team").exists()


def test_the_default_moves_with_the_make_default_action(operator: Client, free: Plan) -> None:
    pro = PlanFactory(slug="pro")
    operator.post(reverse("admin:billing_plan_changelist"), {"action": "make_default", "_selected_action": [pro.pk]})
    assert list(Plan.objects.filter(is_default=True)) == [pro]


def test_the_default_plan_and_plans_with_history_cannot_be_deleted(operator: Client, free: Plan) -> None:
    used = SubscriptionFactory().plan
    assert operator.get(reverse("admin:billing_plan_delete", args=[free.pk])).status_code == 403
    assert operator.get(reverse("admin:billing_plan_delete", args=[used.pk])).status_code == 403
    unused = PlanFactory(slug="unused")
    assert operator.post(reverse("admin:billing_plan_delete", args=[unused.pk]), {"post": "yes"}).status_code == 302
    assert not Plan.objects.filter(slug="unused").exists()


def test_adding_a_subscription_moves_the_organization_and_keeps_its_history(
    operator: Client, free: Plan, org: Organization
) -> None:
    pro, team = PlanFactory(slug="pro"), PlanFactory(slug="team")
    for plan in (pro, team):
        response = operator.post(reverse("admin:billing_subscription_add"), {"organization": org.pk, "plan": plan.pk})
        assert response.status_code == 302
    assert plan_for_organization(organization_id=org.pk) == team
    periods = Subscription.objects.filter(organization=org).order_by("started_at", "id")
    assert [(s.plan.slug, s.ended_at is None) for s in periods] == [("pro", False), ("team", True)]
    assert AuditEvent.objects.filter(action="plan.change", organization=org).count() == 2
    changelist = operator.get(reverse("admin:billing_subscription_changelist")).content.decode()
    assert "Acme" in changelist
