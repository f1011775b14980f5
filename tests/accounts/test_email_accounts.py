"""Email sign-up, verification, sign-in limits (django-allauth) in the portal's pages."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent, Membership, User

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-and-unusual-password-7"


def sign_up(client: Client, email: str = "new@example.com") -> object:
    return client.post(
        "/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD}, follow=False
    )


def test_sign_up_creates_a_user_with_a_personal_organization(client: Client) -> None:
    response = sign_up(client)
    assert response.status_code == 302  # type: ignore[attr-defined]
    user = User.objects.get(email="new@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == "owner"
    assert membership.organization.personal
    assert AuditEvent.objects.filter(action="user.sign_up", actor=user, organization=membership.organization).exists()


def test_sign_up_sends_a_verification_link_that_verifies_the_address(client: Client) -> None:
    sign_up(client)
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body)
    assert link is not None
    path = (
        link.group(0).split("testserver", 1)[-1]
        if "testserver" in link.group(0)
        else "/" + link.group(0).split("/", 3)[3]
    )
    assert not EmailAddress.objects.get(email="new@example.com").verified
    response = client.post(path)
    assert response.status_code == 302
    assert EmailAddress.objects.get(email="new@example.com").verified


def test_sign_in_and_out(client: Client) -> None:
    sign_up(client)
    client.post("/accounts/logout/")
    response = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    assert AuditEvent.objects.filter(action="user.sign_in").exists()


def test_repeated_failed_sign_ins_are_slowed_down(client: Client) -> None:
    sign_up(client)
    client.post("/accounts/logout/")
    for _ in range(5):
        client.post("/accounts/login/", {"login": "new@example.com", "password": "wrong-password"})
    # After five failures even the right password is refused for a while.
    response = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_pages_use_the_portal_layout_and_work_without_javascript(client: Client) -> None:
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        response = client.get(path)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Cortensor Portal" in html
        assert 'name="csrfmiddlewaretoken"' in html
        assert "<form" in html


def test_password_reset_mails_a_link(client: Client) -> None:
    sign_up(client)
    mail.outbox.clear()
    client.post("/accounts/logout/")
    response = client.post("/accounts/password/reset/", {"email": "new@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
