"""New wallet accounts: the plan they start on (SIWE_WALLET_ONLY_PLAN), the move to the default plan once they
verify an email address, and how many one client address may make (ACCOUNT_RATE_LIMITS["siwe_signup"]).

Real EIP-4361 messages signed by eth-account keys, as in test_siwe.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from eth_account import Account

from accounts.models import AuditEvent, Membership, Organization, User, Wallet
from billing.models import Plan
from billing.selectors import plan_for_organization, subscription_history
from billing.services import subscription_change
from tests.accounts.test_siwe import sign
from tests.factories import DefaultPlanFactory, OperatorFactory, PlanFactory

pytestmark = pytest.mark.django_db

HOME = "198.51.100.20"
ELSEWHERE = "203.0.113.20"


def wallet(n: int) -> Any:
    return Account.from_key("0x" + f"{n + 1:064x}")


def wallet_sign_in(client: Client, account: Any, ip: str = HOME) -> tuple[int, dict[str, str]]:
    challenge = client.post(
        "/accounts/siwe/challenge",
        json.dumps({"address": account.address, "chain_id": 1}),
        content_type="application/json",
        REMOTE_ADDR=ip,
    )
    assert challenge.status_code == 200, challenge.content
    message = challenge.json()["message"]
    response = client.post(
        "/accounts/siwe/verify",
        json.dumps({"message": message, "signature": sign(message, account)}),
        content_type="application/json",
        REMOTE_ADDR=ip,
    )
    return response.status_code, response.json()


def organization_of(account: Any) -> Organization:
    user = Wallet.objects.get(address=account.address).user
    return Membership.objects.get(user=user, organization__personal=True).organization


def plan_page(client: Client, organization: Organization) -> str:
    return client.get(f"/orgs/{organization.slug}/plan/").content.decode()


@pytest.fixture
def free(db: None) -> Plan:
    return DefaultPlanFactory(short_requests=200, weekly_requests=1000)


@pytest.fixture
def starter(db: None) -> Plan:
    return PlanFactory(slug="wallet-starter", name="Wallet starter", short_requests=10, weekly_requests=50)


@pytest.fixture
def wallet_only_plan(settings: Any, starter: Plan) -> Plan:
    settings.SIWE_WALLET_ONLY_PLAN = starter.slug
    return starter


def test_without_the_setting_a_new_wallet_gets_the_default_plan_as_before(client: Client, free: Plan) -> None:
    assert wallet_sign_in(client, wallet(0))[0] == 200
    organization = organization_of(wallet(0))
    assert plan_for_organization(organization_id=organization.pk) == free
    assert not subscription_history(organization_id=organization.pk).exists()
    assert 'is on <span class="badge badge-owner">Free</span>' in plan_page(client, organization)


def test_with_the_setting_a_new_wallet_starts_on_the_smaller_plan(
    client: Client, free: Plan, wallet_only_plan: Plan
) -> None:
    assert wallet_sign_in(client, wallet(0))[0] == 200
    organization = organization_of(wallet(0))
    assert plan_for_organization(organization_id=organization.pk) == wallet_only_plan
    assert 'is on <span class="badge badge-owner">Wallet starter</span>' in plan_page(client, organization)
    change = AuditEvent.objects.get(action="plan.change", organization=organization)
    assert change.data["to"] == "wallet-starter"
    # Signing in again changes nothing.
    assert wallet_sign_in(Client(), wallet(0))[0] == 200
    assert subscription_history(organization_id=organization.pk).count() == 1


def test_email_sign_ups_are_not_affected_by_the_setting(free: Plan, wallet_only_plan: Plan) -> None:
    password = "a-long-and-unusual-password-7"
    Client().post("/accounts/signup/", {"email": "new@example.com", "password1": password, "password2": password})
    organization = Membership.objects.get(user__email="new@example.com").organization
    assert plan_for_organization(organization_id=organization.pk) == free


def test_more_organizations_of_a_wallet_only_account_start_on_the_smaller_plan_too(
    client: Client, free: Plan, wallet_only_plan: Plan
) -> None:
    wallet_sign_in(client, wallet(0))
    client.post("/orgs/", {"name": "Second"})
    second = Organization.objects.get(name="Second")
    assert plan_for_organization(organization_id=second.pk) == wallet_only_plan


def add_and_verify_email(client: Client, email: str) -> None:
    response = client.post("/accounts/email/", {"email": email, "action_add": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    link = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail.outbox[-1].body)
    assert link is not None and mail.outbox[-1].to == [email]
    assert client.post(link.group(1)).status_code == 302


def test_verifying_an_email_moves_the_account_to_the_default_plan(
    client: Client, free: Plan, wallet_only_plan: Plan
) -> None:
    wallet_sign_in(client, wallet(0))
    client.post("/orgs/", {"name": "Second"})
    personal, second = organization_of(wallet(0)), Organization.objects.get(name="Second")

    add_and_verify_email(client, "holder@example.com")

    for organization in (personal, second):
        history = list(subscription_history(organization_id=organization.pk))
        assert [s.plan.slug for s in history] == ["free", "wallet-starter"]
        assert history[0].ended_at is None and history[1].ended_at is not None
        assert history[0].changed_by == User.objects.get(email="holder@example.com")
        assert 'is on <span class="badge badge-owner">Free</span>' in plan_page(client, organization)
    assert AuditEvent.objects.filter(action="plan.change", data__to="free").count() == 2


def test_an_organization_an_operator_moved_meanwhile_stays_where_it_is(
    client: Client, free: Plan, wallet_only_plan: Plan
) -> None:
    pro = PlanFactory(slug="pro", name="Pro")
    wallet_sign_in(client, wallet(0))
    organization = organization_of(wallet(0))
    subscription_change(organization=organization, plan=pro, actor=None)
    add_and_verify_email(client, "holder@example.com")
    assert plan_for_organization(organization_id=organization.pk) == pro


def test_a_missing_wallet_only_plan_refuses_new_wallets_but_not_known_ones(
    client: Client, free: Plan, settings: Any
) -> None:
    assert wallet_sign_in(client, wallet(0))[0] == 200  # made before the setting
    settings.SIWE_WALLET_ONLY_PLAN = "no-such-plan"
    status, body = wallet_sign_in(Client(), wallet(1))
    assert status == 503
    assert "cannot get a new organization right now" in body["error"]
    assert not Wallet.objects.filter(address=wallet(1).address).exists()
    assert User.objects.count() == 1
    assert wallet_sign_in(Client(), wallet(0))[0] == 200


def test_new_wallets_are_limited_per_client_address_and_known_ones_still_sign_in(free: Plan) -> None:
    for n in range(5):
        assert wallet_sign_in(Client(), wallet(n))[0] == 200
    status, body = wallet_sign_in(Client(), wallet(5))
    assert status == 429
    assert "Too many new wallet accounts from your network" in body["error"]
    assert not Wallet.objects.filter(address=wallet(5).address).exists()
    assert User.objects.count() == 5

    # An existing wallet signing in again from the same address is never counted.
    again = Client()
    for _ in range(3):
        assert wallet_sign_in(again, wallet(0))[0] == 200
    # Another network may still make one.
    assert wallet_sign_in(Client(), wallet(5), ip=ELSEWHERE)[0] == 200


def test_a_signed_in_user_linking_a_wallet_is_not_a_sign_up(free: Plan, owner: User) -> None:
    for n in range(5):
        wallet_sign_in(Client(), wallet(n))
    client = Client()
    client.force_login(owner)
    status, body = wallet_sign_in(client, wallet(6))
    assert status == 200 and body["linked"] == wallet(6).address


def test_accepting_an_invitation_mailed_to_the_added_address_counts_as_verifying_it(
    client: Client, free: Plan, wallet_only_plan: Plan, org: Organization, owner: User
) -> None:
    wallet_sign_in(client, wallet(0))
    personal = organization_of(wallet(0))
    assert plan_for_organization(organization_id=personal.pk) == wallet_only_plan
    client.post("/accounts/email/", {"email": "holder@example.com", "action_add": ""})  # not verified yet
    # allauth makes an address the login once it is verified; an operator may set it sooner in the admin.
    User.objects.filter(wallets__address=wallet(0).address).update(email="holder@example.com")
    owner_client = Client()
    owner_client.force_login(owner)
    owner_client.post(f"/orgs/{org.slug}/invitations/", {"email": "holder@example.com", "role": "member"})
    link = re.search(r"/invitations/[^/\s]+/", mail.outbox[-1].body)
    assert link is not None
    response = client.post(link.group(0))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert plan_for_organization(organization_id=personal.pk) == free


def test_an_operator_marking_the_address_verified_in_the_admin_moves_the_account_too(
    client: Client, free: Plan, wallet_only_plan: Plan
) -> None:
    from allauth.account.models import EmailAddress

    wallet_sign_in(client, wallet(0))
    personal = organization_of(wallet(0))
    assert plan_for_organization(organization_id=personal.pk) == wallet_only_plan
    client.post("/accounts/email/", {"email": "holder@example.com", "action_add": ""})
    address = EmailAddress.objects.get(email="holder@example.com")
    operator = OperatorFactory(email="operator@example.com")
    admin = Client()
    admin.force_login(operator)
    response = admin.post("/admin/account/emailaddress/", {"action": "make_verified", "_selected_action": [address.pk]})
    assert response.status_code == 302
    assert plan_for_organization(organization_id=personal.pk) == free
