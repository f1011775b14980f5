"""Organizations, roles, invitations and the audit log, through the pages."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import AuditEvent, Invitation, Membership, Organization, User
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def membership(user: User, org: Organization) -> Membership:
    return Membership.objects.get(user=user, organization=org)


def test_members_see_the_team_page_and_outsiders_get_404(
    org: Organization, owner: User, member: User, outsider: User
) -> None:
    assert as_user(member).get("/orgs/acme/").status_code == 200
    assert as_user(outsider).get("/orgs/acme/").status_code == 404
    anonymous = Client().get("/orgs/acme/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_only_managers_see_invitations_and_the_audit_log(org: Organization, owner: User, member: User) -> None:
    AuditEvent.objects.create(action="test.secret_event", organization=org)
    assert "test.secret_event" in as_user(owner).get("/orgs/acme/").content.decode()
    page = as_user(member).get("/orgs/acme/").content.decode()
    assert "test.secret_event" not in page
    assert "Invitations" not in page


@pytest.mark.parametrize(
    ("method_path", "data"),
    [
        ("/orgs/acme/invitations/", {"email": "x@example.com", "role": "member"}),
        ("/orgs/acme/members/{owner}/role", {"role": "member"}),
        ("/orgs/acme/members/{owner}/remove", {}),
    ],
)
def test_a_member_cannot_manage_and_an_outsider_cannot_see(
    method_path: str, data: dict[str, str], org: Organization, owner: User, member: User, outsider: User
) -> None:
    path = method_path.format(owner=membership(owner, org).pk)
    assert as_user(member).post(path, data).status_code == 403
    assert as_user(outsider).post(path, data).status_code == 404
    assert membership(owner, org).role == "owner"
    assert not Invitation.objects.exists()


def test_invite_accept_as_a_new_user_then_promote(org: Organization, owner: User) -> None:
    owner_client = as_user(owner)
    response = owner_client.post("/orgs/acme/invitations/", {"email": "Newcomer@Example.com", "role": "member"})
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "newcomer@example.com"
    link = re.search(r"/invitations/[^/\s]+/", mail.outbox[-1].body)
    assert link is not None

    newcomer = Client()
    response = newcomer.get(link.group(0))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    newcomer.post(
        f"/accounts/signup/?next={link.group(0)}",
        {"email": "newcomer@example.com", "password1": TEST_PASSWORD, "password2": TEST_PASSWORD},
    )
    # Signing in waits for the address to be verified; the mailed link signs in and leads back to the invitation.
    confirm = re.search(r"https?://[^/\s]+(/accounts/confirm-email/\S+/)", mail.outbox[-1].body)
    assert confirm is not None
    assert newcomer.post(confirm.group(1))["Location"] == link.group(0)
    assert "Join Acme" in newcomer.get(link.group(0)).content.decode()
    response = newcomer.post(link.group(0))
    assert response.status_code == 302

    new_user = User.objects.get(email="newcomer@example.com")
    joined = membership(new_user, org)
    assert joined.role == "member"

    owner_client.post(f"/orgs/acme/members/{joined.pk}/role", {"role": "admin"})
    assert membership(new_user, org).role == "admin"
    actions = set(AuditEvent.objects.filter(organization=org).values_list("action", flat=True))
    assert {"invitation.create", "invitation.accept", "membership.role_change"} <= actions


def test_an_invitation_link_works_once(org: Organization, owner: User, member: User) -> None:
    as_user(owner).post("/orgs/acme/invitations/", {"email": "guest@example.com", "role": "member"})
    link = re.search(r"/invitations/[^/\s]+/", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    guest = User.objects.create_user("guest@example.com", TEST_PASSWORD)
    client = as_user(guest)
    assert client.post(link).status_code == 302
    response = client.post(link)
    assert response.status_code == 400
    assert "already been used" in response.content.decode()


def test_an_invitation_for_another_address_is_refused(org: Organization, owner: User, outsider: User) -> None:
    as_user(owner).post("/orgs/acme/invitations/", {"email": "guest@example.com", "role": "member"})
    link = re.search(r"/invitations/[^/\s]+/", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    response = as_user(outsider).post(link)
    assert response.status_code == 400
    assert "sent to guest@example.com" in response.content.decode()
    assert not Membership.objects.filter(user=outsider, organization=org).exists()


def test_a_tampered_or_withdrawn_invitation_is_refused(org: Organization, owner: User) -> None:
    as_user(owner).post("/orgs/acme/invitations/", {"email": "guest@example.com", "role": "member"})
    link = re.search(r"/invitations/[^/\s]+/", mail.outbox[-1].body).group(0)  # type: ignore[union-attr]
    guest = as_user(User.objects.create_user("guest@example.com", TEST_PASSWORD))
    assert guest.get(link[:-3] + "xx/").status_code == 400
    invitation = Invitation.objects.get()
    as_user(owner).post(f"/orgs/acme/invitations/{invitation.pk}/revoke")
    response = guest.post(link)
    assert response.status_code == 400
    assert "withdrawn" in response.content.decode()


def test_the_last_owner_can_neither_leave_nor_be_demoted(org: Organization, owner: User, admin_user: User) -> None:
    client = as_user(owner)
    client.post(f"/orgs/acme/members/{membership(owner, org).pk}/role", {"role": "member"})
    assert membership(owner, org).role == "owner"
    client.post("/orgs/acme/leave")
    assert Membership.objects.filter(user=owner, organization=org).exists()
    # With a second owner, the first may step down.
    client.post(f"/orgs/acme/members/{membership(admin_user, org).pk}/role", {"role": "owner"})
    client.post(f"/orgs/acme/members/{membership(owner, org).pk}/role", {"role": "member"})
    assert membership(owner, org).role == "member"


def test_an_admin_cannot_touch_owners_or_make_owners(
    org: Organization, owner: User, admin_user: User, member: User
) -> None:
    client = as_user(admin_user)
    client.post(f"/orgs/acme/members/{membership(owner, org).pk}/remove")
    assert Membership.objects.filter(user=owner, organization=org).exists()
    client.post(f"/orgs/acme/members/{membership(member, org).pk}/role", {"role": "owner"})
    assert membership(member, org).role == "member"
    client.post(f"/orgs/acme/members/{membership(member, org).pk}/role", {"role": "admin"})
    assert membership(member, org).role == "admin"


def test_a_member_can_leave(org: Organization, owner: User, member: User) -> None:
    response = as_user(member).post("/orgs/acme/leave")
    assert response.status_code == 302
    assert not Membership.objects.filter(user=member, organization=org).exists()
    assert AuditEvent.objects.filter(action="membership.leave", actor=member).exists()


def test_htmx_requests_get_the_member_list_partial(org: Organization, owner: User, member: User) -> None:
    response = as_user(owner).post(
        f"/orgs/acme/members/{membership(member, org).pk}/role", {"role": "admin"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="members-title"' in html
    assert "<html" not in html
    assert "is now admin" in html


def test_the_switcher_keeps_the_current_organization_in_the_session(org: Organization, owner: User) -> None:
    client = as_user(owner)
    client.post("/orgs/", {"name": "Side Project"})
    assert client.session["current_organization"] == "side-project"
    client.post("/orgs/switch", {"organization": "acme", "next": "/orgs/"})
    assert client.session["current_organization"] == "acme"
    assert client.post("/orgs/switch", {"organization": "elsewhere"}).status_code == 404


def test_audit_events_cannot_be_edited_or_deleted(org: Organization, owner: User) -> None:
    event = AuditEvent.objects.create(action="test.event", organization=org, actor=owner)
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).delete()


def test_the_database_refuses_edits_to_audit_events(org: Organization, owner: User) -> None:
    from django.db import connection, transaction

    event = AuditEvent.objects.create(action="test.event", organization=org, actor=owner)
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE accounts_auditevent SET action = 'forged' WHERE id = %s", [event.pk])
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent WHERE id = %s", [event.pk])
    # Deleting the actor still works: the reference becomes NULL, the event stays.
    owner.delete()
    assert AuditEvent.objects.get(pk=event.pk).actor is None
