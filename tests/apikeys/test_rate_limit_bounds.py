"""A key's own rate limit is bounded: at most the plan's limit per key (the gateway applies the lower of the two),
or 1,000,000 when no plan applies, and never beyond the database column (2**31 - 1). Too large a number is the
caller's mistake, answered with 400 (API) or a form error (pages) naming the field and the range, never a 500."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.models import Organization, User
from apikeys.models import ApiKey
from billing.models import Plan
from tests.factories import PlanFactory, SubscriptionFactory, issue_key, verified

pytestmark = pytest.mark.django_db

TOO_BIG = 2**31  # one past PostgreSQL's integer: before the bound, the insert failed with a 500


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(verified(user))
    return client


def test_api_create_with_a_rate_limit_beyond_the_column_is_a_400_naming_the_range(
    org: Organization, owner: User
) -> None:
    body = json.dumps({"name": "ci", "rate_limit": TOO_BIG})
    response = signed_in(owner).post("/api/v1/keys", body, content_type="application/json")
    assert response.status_code == 400
    message = response.json()["rate_limit"][0]
    assert "from 1 to 1,000,000" in message
    assert not ApiKey.objects.exists()


def test_api_update_with_a_rate_limit_beyond_the_column_is_a_400(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), rate_limit=10)
    body = json.dumps({"rate_limit": TOO_BIG})
    response = signed_in(owner).patch(f"/api/v1/keys/{key.pk}", body, content_type="application/json")  # type: ignore[attr-defined]
    assert response.status_code == 400
    assert "from 1 to 1,000,000" in response.json()["rate_limit"][0]
    assert ApiKey.objects.get().rate_limit_requests == 10


def test_the_bound_is_the_plans_limit_per_key_when_a_plan_applies(org: Organization, owner: User) -> None:
    SubscriptionFactory(organization=org, plan=PlanFactory(name="Starter", key_rate_requests=20))
    client = signed_in(owner)
    over = client.post("/api/v1/keys", json.dumps({"name": "a", "rate_limit": 21}), content_type="application/json")
    assert over.status_code == 400
    assert over.json()["rate_limit"] == [
        "The key's rate limit must be a whole number of requests from 1 to 20 (the Starter plan's limit per key); "
        "leave it empty for the plan's limit."
    ]
    at = client.post("/api/v1/keys", json.dumps({"name": "b", "rate_limit": 20}), content_type="application/json")
    assert at.status_code == 201
    assert at.json()["rate_limit"] == 20


def test_a_rotated_key_keeps_its_limit_after_the_plan_lowered_its_own(org: Organization, owner: User) -> None:
    plan = PlanFactory(key_rate_requests=100)
    SubscriptionFactory(organization=org, plan=plan)
    key, _ = issue_key(org, verified(owner), rate_limit=80)
    Plan.objects.filter(pk=plan.pk).update(key_rate_requests=10)
    rotated = signed_in(owner).post(f"/api/v1/keys/{key.pk}/rotate", "{}", content_type="application/json")  # type: ignore[attr-defined]
    assert rotated.status_code == 201
    assert rotated.json()["rate_limit"] == 80  # the gateway applies the plan's 10, the lower one


def test_the_create_form_shows_the_range_beside_the_field(org: Organization, owner: User) -> None:
    response = signed_in(owner).post(
        "/orgs/acme/keys/", {"name": "bot", "scopes": ["inference"], "rate_limit": str(TOO_BIG)}
    )
    assert response.status_code == 422
    html = response.content.decode()
    help_text = html[html.index('id="rl-help"') :][:300]
    assert "from 1 to 1,000,000" in help_text
    assert not ApiKey.objects.exists()


def test_the_settings_form_shows_the_range_and_keeps_the_old_limit(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="svc", rate_limit=10)
    response = signed_in(owner).post(f"/orgs/acme/keys/{key.pk}/", {"name": "svc", "rate_limit": str(TOO_BIG)})  # type: ignore[attr-defined]
    assert response.status_code == 422
    html = response.content.decode()
    field = html[html.index('id="id_rate_limit"') :][:500]
    assert "from 1 to 1,000,000" in field
    assert ApiKey.objects.get().rate_limit_requests == 10
