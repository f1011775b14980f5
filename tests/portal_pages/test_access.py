"""Every portal page: members read it, other organizations get 404, strangers are sent to sign in, and nobody can
change anything through it (the pages are read-only; the plan page's one write is for owners)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Organization, User
from billing.models import Plan, UpgradeRequest
from tests.factories import PlanFactory
from tests.portal_pages.conftest import as_user, record

pytestmark = [pytest.mark.django_db]

PAGES = [
    "/orgs/acme/dashboard/",
    "/orgs/acme/usage/",
    "/orgs/acme/usage/?chart=day",
    "/orgs/acme/requests/",
    "/orgs/acme/models/",
    "/orgs/acme/plan/",
]


@pytest.mark.parametrize("url", PAGES)
def test_a_member_reads_every_page(url: str, org: Organization, member: User, key: Any, counters: str) -> None:
    response = as_user(member).get(url)
    assert response.status_code == 200
    assert "Acme" in response.content.decode()


@pytest.mark.parametrize("url", PAGES)
def test_an_outsider_gets_404_and_a_stranger_the_sign_in_page(
    url: str, org: Organization, outsider: User, key: Any, counters: str
) -> None:
    assert as_user(outsider).get(url).status_code == 404
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_an_outsider_cannot_open_another_organizations_request(
    org: Organization, owner: User, outsider: User, key: Any, counters: str
) -> None:
    record(org, key, ok=1)
    from metering.models import UsageEvent

    request_id = UsageEvent.objects.get().request_id
    assert as_user(owner).get(f"/orgs/acme/requests/{request_id}/").status_code == 200
    assert as_user(outsider).get(f"/orgs/acme/requests/{request_id}/").status_code == 404
    assert as_user(outsider).get(f"/orgs/elsewhere/requests/{request_id}/").status_code == 404


@pytest.mark.parametrize("url", PAGES[:1] + PAGES[1:2] + PAGES[3:5])
def test_the_usage_pages_refuse_every_write(url: str, org: Organization, owner: User, key: Any, counters: str) -> None:
    client = as_user(owner)
    for method in (client.post, client.put, client.delete):
        assert method(url).status_code == 405


def test_a_member_without_the_owner_role_cannot_ask_for_a_plan(
    org: Organization, member: User, admin_user: User, plan: Plan, key: Any, counters: str
) -> None:
    team = PlanFactory(slug="team", name="Team", key_rate_requests=60, short_requests=1000, weekly_requests=5000)
    for user in (member, admin_user):
        client = as_user(user)
        assert client.post("/orgs/acme/plan/upgrade", {"plan": team.slug}).status_code == 403
        assert "Ask for Team" not in client.get("/orgs/acme/plan/").content.decode()
    assert not UpgradeRequest.objects.exists()


def test_a_member_sees_keys_but_no_way_to_create_or_revoke(
    org: Organization, member: User, key: Any, counters: str
) -> None:
    client = as_user(member)
    text = client.get("/orgs/acme/dashboard/").content.decode()
    assert "See keys" in text and "Create your first key" not in text
    assert client.post(f"/orgs/acme/keys/{key.pk}/revoke").status_code == 403
    assert client.post("/orgs/acme/keys/", {"name": "sneaky", "scopes": ["inference"]}).status_code == 403
    key.refresh_from_db()
    assert key.effective_status() == "active"


def test_sign_in_lands_on_the_dashboard_of_the_organization_worked_in(
    org: Organization, owner: User, key: Any, counters: str
) -> None:
    response = as_user(owner).get("/dashboard/")
    assert response.status_code == 302 and response["Location"] == "/orgs/acme/dashboard/"
    from django.conf import settings

    assert settings.LOGIN_REDIRECT_URL == "/dashboard/"
