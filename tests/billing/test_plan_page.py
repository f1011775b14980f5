"""The plan page: every member reads the plan in plain words and the credit history; only owners ask for another
plan, and the request is recorded and audited. Other organizations get 404."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Organization, User
from billing.ledger import MICRO, ledger_grant
from billing.models import Plan, UpgradeRequest, UpgradeStatus
from tests.factories import DefaultPlanFactory, OperatorFactory, PlanFactory, SubscriptionFactory

pytestmark = [pytest.mark.django_db]

PLAN_URL = "/orgs/acme/plan/"
UPGRADE_URL = "/orgs/acme/plan/upgrade"


@pytest.fixture
def team(db: None) -> Plan:
    return PlanFactory(
        slug="team",
        name="Team",
        price_text="$20 / month",
        key_rate_requests=60,
        short_requests=2_000,
        weekly_requests=10_000,
        sort_order=2,
    )


@pytest.fixture
def free(team: Plan) -> Plan:
    return DefaultPlanFactory(price_text="Free", upgrade_to=team, sort_order=1)


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_outsiders_get_404_and_strangers_are_sent_to_sign_in(org: Organization, outsider: User, free: Plan) -> None:
    client = as_user(outsider)
    assert client.get(PLAN_URL).status_code == 404
    assert client.post(UPGRADE_URL, {"plan": "team"}).status_code == 404
    assert not UpgradeRequest.objects.exists()
    anonymous = Client().get(PLAN_URL)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_members_read_their_plan_in_plain_words(org: Organization, owner: User, member: User, free: Plan) -> None:
    text = as_user(member).get(PLAN_URL).content.decode()
    assert "Acme is on" in text and "Free" in text
    assert "20 requests per minute per key; 200 per 5 hours and 1,000 per week for the organization" in text
    assert "60 requests per minute per key; 2,000 per 5 hours and 10,000 per week for the organization" in text
    assert "Payment is not available yet" in text
    assert "Next step up" in text  # Free names Team as its upgrade


def test_a_member_sees_who_can_upgrade_but_cannot_ask(
    org: Organization, owner: User, member: User, admin_user: User, free: Plan, team: Plan
) -> None:
    page = as_user(member).get(PLAN_URL).content.decode()
    assert "Only owners can ask for another plan: Olive Owner" in page
    assert UPGRADE_URL not in page
    for user in (member, admin_user):
        assert as_user(user).post(UPGRADE_URL, {"plan": "team"}).status_code == 403
    assert not UpgradeRequest.objects.exists()
    assert not AuditEvent.objects.filter(action="plan.upgrade_request").exists()


def test_an_owners_upgrade_request_is_recorded_and_audited(
    org: Organization, owner: User, free: Plan, team: Plan
) -> None:
    client = as_user(owner)
    assert UPGRADE_URL in client.get(PLAN_URL).content.decode()

    response = client.post(UPGRADE_URL, {"plan": "team", "note": "We are launching in May."}, follow=True)

    request = UpgradeRequest.objects.get()
    assert (request.organization, request.from_plan, request.to_plan, request.requested_by) == (org, free, team, owner)
    assert (request.status, request.note) == (UpgradeStatus.OPEN, "We are launching in May.")
    event = AuditEvent.objects.get(action="plan.upgrade_request")
    assert (event.actor, event.organization, event.target) == (owner, org, "plan:team")
    assert event.data["from"] == "free" and event.data["to"] == "team"
    text = response.content.decode()
    assert "we have your request for Team" in text and "Requested on" in text


def test_the_same_plan_is_asked_for_once_while_the_request_is_open(
    org: Organization, owner: User, free: Plan, team: Plan
) -> None:
    client = as_user(owner)
    client.post(UPGRADE_URL, {"plan": "team"})
    response = client.post(UPGRADE_URL, {"plan": "team"}, follow=True)
    assert "was already requested" in response.content.decode()
    assert UpgradeRequest.objects.count() == 1


def test_an_owner_cannot_ask_for_the_plan_they_are_on_or_an_unknown_one(
    org: Organization, owner: User, free: Plan, team: Plan
) -> None:
    SubscriptionFactory(organization=org, plan=team)
    client = as_user(owner)
    assert "already on Team" in client.post(UPGRADE_URL, {"plan": "team"}, follow=True).content.decode()
    retired = PlanFactory(slug="retired", active=False)
    assert "Choose one of the plans" in client.post(UPGRADE_URL, {"plan": retired.slug}, follow=True).content.decode()
    assert not UpgradeRequest.objects.exists()


def test_with_htmx_the_request_swaps_the_plans_section(org: Organization, owner: User, free: Plan, team: Plan) -> None:
    response = as_user(owner).post(UPGRADE_URL, {"plan": "team"}, headers={"HX-Request": "true"})
    text = response.content.decode()
    assert response.status_code == 200 and "<html" not in text
    assert 'id="plans-title"' in text and "Requested on" in text and "we have your request" in text


def test_the_page_shows_the_credit_history_and_its_balance(
    org: Organization, owner: User, member: User, free: Plan
) -> None:
    operator = OperatorFactory()
    ledger_grant(organization=org, amount_micro=12 * MICRO, memo="Hackathon credits", actor=operator)
    ledger_grant(organization=org, amount_micro=500_000, memo="Bug report thanks", actor=operator)
    text = as_user(member).get(PLAN_URL).content.decode()
    assert "Balance: <strong>12.5 credits</strong>" in text
    assert "Hackathon credits" in text and "+0.5" in text
    assert "/orgs/acme/plan/statements/" in text


def test_the_page_says_so_when_no_plan_applies(org: Organization, owner: User) -> None:
    response = as_user(owner).get(PLAN_URL)
    assert response.status_code == 200
    assert "has no plan yet" in response.content.decode()
