"""Email sign-up, verification, sign-in limits (django-allauth) in the portal's pages.

An address must be verified before it signs in; sign-up answers the same whether the address is new or taken."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.core import ratelimit
from django.core import mail
from django.test import Client, RequestFactory

from accounts.models import AuditEvent, Membership, User
from tests.factories import TEST_PASSWORD, verified

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-and-unusual-password-7"
CONFIRM_LINK = r"https?://[^/\s]+(/accounts/confirm-email/\S+/)"


def sign_up(client: Client, email: str = "new@example.com", password: str = PASSWORD) -> object:
    return client.post("/accounts/signup/", {"email": email, "password1": password, "password2": password})


def confirm_from_mail(client: Client, to: str = "new@example.com") -> object:
    """Follow the newest confirmation link mailed to `to`, as its owner does."""
    bodies = [message.body for message in mail.outbox if to in message.to]
    links = [m.group(1) for body in bodies if (m := re.search(CONFIRM_LINK, body))]
    assert links, f"no confirmation link mailed to {to}"
    return client.post(links[-1])


def main_of(response: object) -> str:
    """The page's <main>, as the reader sees it (the per-request CSP nonce left out)."""
    html = response.content.decode()  # type: ignore[attr-defined]
    main = html[html.index("<main") : html.index("</main>")]
    return re.sub(r'nonce="[^"]*"', "", main)


def test_sign_up_creates_a_user_with_a_personal_organization_but_does_not_sign_in(client: Client) -> None:
    response = sign_up(client)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert response["Location"] == "/accounts/confirm-email/"  # type: ignore[index]
    user = User.objects.get(email="new@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == "owner"
    assert membership.organization.personal
    assert AuditEvent.objects.filter(action="user.sign_up", actor=user, organization=membership.organization).exists()
    assert "_auth_user_id" not in client.session


def test_the_mailed_link_verifies_the_address_and_signs_in(client: Client) -> None:
    sign_up(client)
    assert [message.to for message in mail.outbox] == [["new@example.com"]]
    assert not EmailAddress.objects.get(email="new@example.com").verified
    response = confirm_from_mail(client)
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert EmailAddress.objects.get(email="new@example.com").verified
    assert client.session["_auth_user_id"] == str(User.objects.get(email="new@example.com").pk)


def test_an_unverified_address_cannot_sign_in_and_is_sent_the_link_again(client: Client) -> None:
    sign_up(client)
    mail.outbox.clear()
    other_browser = Client()
    response = other_browser.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in other_browser.session
    # The sign-up mail went out a moment ago; allauth's cooldown (3 minutes per address) holds the next one back.
    assert mail.outbox == []


def test_sign_up_with_a_taken_address_answers_exactly_like_a_new_one(owner: User) -> None:
    verified(owner)
    new, taken = Client(), Client()
    first = sign_up(new, "new@example.com")
    second = sign_up(taken, owner.email)
    assert (first.status_code, first["Location"]) == (second.status_code, second["Location"])  # type: ignore[attr-defined,index]
    new_page, taken_page = new.get("/accounts/confirm-email/"), taken.get("/accounts/confirm-email/")
    assert new_page.status_code == taken_page.status_code == 200
    assert main_of(new_page).replace("new@example.com", "ADDRESS") == main_of(taken_page).replace(
        owner.email, "ADDRESS"
    )
    assert "Confirmation email sent to owner@example.com." in main_of(taken_page)
    assert "already" not in main_of(taken_page).lower()
    assert "_auth_user_id" not in taken.session


def test_sign_up_with_a_taken_address_mails_its_owner_and_makes_no_account(owner: User) -> None:
    verified(owner)
    sign_up(Client(), owner.email, password="someone-elses-password-9")
    assert User.objects.filter(email=owner.email).count() == 1
    [message] = mail.outbox
    assert message.to == [owner.email]
    assert "already exists" in message.body
    assert "/accounts/password/reset/" in message.body
    # The stranger's password did not replace the owner's.
    client = Client()
    client.post("/accounts/login/", {"login": owner.email, "password": TEST_PASSWORD})
    assert client.session["_auth_user_id"] == str(owner.pk)


def test_repeated_sign_ups_with_a_taken_address_do_not_fill_its_owners_inbox(owner: User) -> None:
    verified(owner)
    for _ in range(5):
        sign_up(Client(), owner.email)
        # allauth's own cooldown (one verification mail per address every 3 minutes) is passed, as time would.
        ratelimit.clear(RequestFactory().post("/"), action="confirm_email", key=owner.email)
    assert len(mail.outbox) == 3  # ACCOUNT_RATE_LIMITS["account_exists_mail"]: 3 an hour per address


def test_sign_in_and_out(client: Client) -> None:
    sign_up(client)
    confirm_from_mail(client)
    client.post("/accounts/logout/")
    response = client.post("/accounts/login/", {"login": "new@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    assert AuditEvent.objects.filter(action="user.sign_in").exists()


def test_repeated_failed_sign_ins_are_slowed_down(client: Client) -> None:
    sign_up(client)
    confirm_from_mail(client)
    client.post("/accounts/logout/")
    for _ in range(5):
        client.post("/accounts/login/", {"login": "new@example.com", "password": "wrong-password"})
    # After five failures from this address even the right password is refused here for a while.
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
    response = client.post("/accounts/password/reset/", {"email": "new@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_the_demo_login_seeded_for_a_local_run_signs_in(client: Client) -> None:
    from io import StringIO

    from django.core.management import call_command

    from portal.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD

    call_command("seed_demo", stdout=StringIO())
    response = client.post("/accounts/login/", {"login": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] != "/accounts/confirm-email/"
    assert client.session["_auth_user_id"] == str(User.objects.get(email=DEMO_EMAIL).pk)
