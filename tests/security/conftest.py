"""Security fixtures: Acme's objects for the authorization matrix, and logged-in clients for each persona."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from accounts.models import Invitation, Membership, Organization, User, Wallet
from metering.ingest import usage_events_ingest
from tests.factories import issue_key, verified
from tests.metering.events import lifecycle


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Personas are made per test; the production hasher's million rounds would dominate the run."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    org: Organization
    users: dict[str, User | None]
    key: Any
    member_membership: Membership
    invitation: Invitation
    invitation_token: str
    wallet: Wallet
    request_id: str
    year: str
    month: str

    def client(self, persona: str) -> Client:
        client = Client()
        user = self.users[persona]
        if user is not None:
            client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client


@pytest.fixture
def world(org: Organization, owner: User, admin_user: User, member: User, outsider: User) -> World:
    key, _ = issue_key(org, verified(owner), name="matrix key")
    owner_membership = Membership.objects.get(organization=org, user=owner)
    invitation = account_services.invitation_create(actor_membership=owner_membership, email="newbie@example.com")
    wallet = Wallet.objects.create(user=owner, address="0x000000000000000000000000000000000000bEEF", chain_id=1)
    events = lifecycle(organization_id=org.pk, key_id=key.pk)
    usage_events_ingest(events=events)
    now = timezone.now()
    return World(
        org=org,
        users={"anonymous": None, "owner": owner, "admin": admin_user, "member": member, "outsider": outsider},
        key=key,
        member_membership=Membership.objects.get(organization=org, user=member),
        invitation=invitation,
        invitation_token=account_services.invitation_token(invitation),
        wallet=wallet,
        request_id=events[0].request_id,
        year=f"{now.year:04d}",
        month=f"{now.month:02d}",
    )
