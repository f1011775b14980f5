"""A `manage` key manages with at most its creator's current rights: checked on every management request, and
taken back by the membership services when the creator is demoted or removed (revoked when the key only manages,
downgraded to its other scopes otherwise), one audit row per key. Inference keys belong to the organization and
its applications, not to the person: a demoted or removed member's inference keys keep working."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import AuditEvent, Membership, Organization, User
from accounts.services import membership_leave
from apikeys.models import ApiKey
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def keys_api(secret: str, method: str = "get") -> object:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    if method == "post":
        return client.post("/api/v1/keys", {"name": "made by a key"}, content_type="application/json")
    return client.get("/api/v1/keys")


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member_of(user: User, org: Organization) -> Membership:
    return Membership.objects.get(user=user, organization=org)


@pytest.fixture
def admins_keys(org: Organization, admin_user: User) -> dict[str, tuple[ApiKey, str]]:
    """What Ada the admin made: a key that only manages, one that manages and calls models, one that calls models."""
    verified(admin_user)
    made = {
        "manage": issue_key(org, admin_user, name="ops", scopes=["manage"]),
        "both": issue_key(org, admin_user, name="ci", scopes=["inference", "manage"]),
        "inference": issue_key(org, admin_user, name="chatbot", scopes=["inference"]),
    }
    return made  # type: ignore[return-value]


def test_a_demoted_admins_manage_key_is_refused_at_once_even_where_no_cleanup_runs(
    org: Organization, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    _, secret = admins_keys["manage"]
    assert keys_api(secret).status_code == 200  # type: ignore[attr-defined]
    # The operator admin's membership inline saves the role directly, without the membership services.
    Membership.objects.filter(user=admin_user, organization=org).update(role="member")
    for method in ("get", "post"):
        refused = keys_api(secret, method)
        assert refused.status_code == 403  # type: ignore[attr-defined]
        assert "no longer an owner or admin of Acme" in refused.json()["detail"]  # type: ignore[attr-defined]
    assert not ApiKey.objects.filter(name="made by a key").exists()
    Membership.objects.filter(user=admin_user, organization=org).update(role="admin")
    assert keys_api(secret).status_code == 200  # type: ignore[attr-defined]  # the rights follow the role as it is


def test_a_removed_members_manage_key_is_refused_at_once_even_where_no_cleanup_runs(
    org: Organization, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    _, secret = admins_keys["manage"]
    Membership.objects.filter(user=admin_user, organization=org).delete()
    assert keys_api(secret).status_code == 403  # type: ignore[attr-defined]


def test_demoting_on_the_team_page_names_the_keys_first_then_revokes_or_downgrades_them(
    org: Organization, owner: User, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    _, owners_secret = issue_key(org, verified(owner), name="owner ops", scopes=["manage"])
    page = as_user(owner)
    path = f"/orgs/acme/members/{member_of(admin_user, org).pk}/role"

    asked = page.post(path, {"role": "member"})
    assert asked.status_code == 200
    assert "Demoting admin@example.com to member revokes 2 management keys they created." in asked.content.decode()
    assert member_of(admin_user, org).role == "admin"  # nothing changes before the answer
    assert keys_api(admins_keys["manage"][1]).status_code == 200  # type: ignore[attr-defined]

    done = page.post(path, {"role": "member", "confirm": "yes"})
    assert done.status_code == 302
    assert member_of(admin_user, org).role == "member"
    only_manage, both, inference = (ApiKey.objects.get(pk=admins_keys[name][0].pk) for name in admins_keys)
    assert (only_manage.status, only_manage.revoked_by) == ("revoked", owner)
    assert (both.status, both.scopes) == ("active", ["inference"])
    assert (inference.status, inference.scopes) == ("active", ["inference"])  # keeps working for the models
    revoked = keys_api(admins_keys["manage"][1])
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]  # type: ignore[attr-defined]
    assert keys_api(admins_keys["both"][1]).status_code == 403  # type: ignore[attr-defined]
    assert keys_api(owners_secret).status_code == 200  # type: ignore[attr-defined]  # others' keys untouched

    rows = {event.action: event for event in AuditEvent.objects.filter(action__startswith="apikey.", actor=owner)}
    assert rows["apikey.revoke"].target == only_manage.masked
    assert rows["apikey.revoke"].data["reason"] == "membership.role_change"
    assert rows["apikey.downgrade"].target == both.masked
    assert rows["apikey.downgrade"].data["removed_scopes"] == ["manage"]
    assert AuditEvent.objects.filter(action__in=["apikey.revoke", "apikey.downgrade"]).count() == 2


def test_removing_on_the_team_page_names_the_keys_first_then_revokes_them(
    org: Organization, owner: User, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    page = as_user(owner)
    team = page.get("/orgs/acme/").content.decode()
    path = f"/orgs/acme/members/{member_of(admin_user, org).pk}/remove"
    form = team[team.index(f'action="{path}"') :][:400]
    assert "data-confirm" not in form  # the server asks, with the count, instead of the browser's plain question

    asked = page.post(path, HTTP_HX_REQUEST="true")
    html = asked.content.decode()
    assert "<html" not in html  # the member list only, with the question in it
    assert "Removing admin@example.com from Acme revokes 2 management keys they created." in html
    assert member_of(admin_user, org)

    page.post(path, {"confirm": "yes"}, HTTP_HX_REQUEST="true")
    assert not Membership.objects.filter(user=admin_user, organization=org).exists()
    removed = keys_api(admins_keys["manage"][1])
    assert removed.status_code == 401  # type: ignore[attr-defined]
    assert ApiKey.objects.get(pk=admins_keys["both"][0].pk).scopes == ["inference"]
    assert ApiKey.objects.get(pk=admins_keys["inference"][0].pk).status == "active"
    reasons = AuditEvent.objects.filter(action__in=["apikey.revoke", "apikey.downgrade"]).values_list(
        "data__reason", flat=True
    )
    assert sorted(reasons) == ["membership.remove", "membership.remove"]


def test_a_member_without_management_keys_is_changed_without_a_question(
    org: Organization, owner: User, member: User
) -> None:
    issue_key(org, verified(owner), scopes=["manage"])  # someone else's management key: not the member's business
    page = as_user(owner)
    team = page.get("/orgs/acme/").content.decode()
    assert "Remove member@example.com from Acme?" in team  # the browser's usual question
    path = f"/orgs/acme/members/{member_of(member, org).pk}/remove"
    assert page.post(path).status_code == 302
    assert not Membership.objects.filter(user=member, organization=org).exists()
    assert not AuditEvent.objects.filter(action="apikey.revoke").exists()


def test_an_owner_made_admin_keeps_their_management_keys(
    org: Organization, owner: User, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    Membership.objects.filter(user=admin_user, organization=org).update(role="owner")
    path = f"/orgs/acme/members/{member_of(admin_user, org).pk}/role"
    assert as_user(owner).post(path, {"role": "admin"}).status_code == 302  # admins still manage: no question
    assert keys_api(admins_keys["manage"][1]).status_code == 200  # type: ignore[attr-defined]


def test_leaving_takes_the_management_rights_of_ones_keys_too(
    org: Organization, owner: User, admin_user: User, admins_keys: dict[str, tuple[ApiKey, str]]
) -> None:
    membership_leave(membership=member_of(admin_user, org))
    assert ApiKey.objects.get(pk=admins_keys["manage"][0].pk).status == "revoked"
    assert ApiKey.objects.get(pk=admins_keys["inference"][0].pk).status == "active"
    event = AuditEvent.objects.get(action="apikey.revoke")
    assert (event.actor, event.data["reason"]) == (admin_user, "membership.leave")
