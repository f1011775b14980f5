from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent, Organization, User
from apikeys.keyformat import key_digest
from apikeys.models import ApiKey
from tests.factories import OperatorFactory, issue_key, verified

pytestmark = pytest.mark.django_db


def create(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_createapikey_makes_user_and_organization_and_prints_only_the_secret() -> None:
    out, err = create(
        "--email",
        "Ops@Example.com",
        "--name",
        "deploy",
        "--scope",
        "inference",
        "--scope",
        "manage",
        "--expires-in",
        "30",
    )
    secret = out.strip()
    assert out.count("\n") == 1 and secret.startswith("ctx_live_")
    key = ApiKey.objects.get(digest=key_digest(secret))
    user = User.objects.get(email="ops@example.com")
    assert key.organization.memberships.get(user=user).role == "owner"
    assert key.scopes == ["inference", "manage"]
    assert key.expires_at is not None
    assert user.emailaddress_set.get().verified
    assert "Created key" in err


def test_createapikey_into_a_named_organization() -> None:
    out, _ = create("--email", "ops@example.com", "--org", "platform")
    key = ApiKey.objects.get(digest=key_digest(out.strip()))
    assert key.organization.slug == "platform"
    out, _ = create("--email", "ops@example.com", "--org", "platform")
    assert Organization.objects.filter(slug="platform").count() == 1


def test_a_command_line_manage_key_is_its_users_and_manages_while_they_may(org: Organization, member: User) -> None:
    """The key's creator is the person named by --email (the audit row's actor stays empty: no portal user acted),
    so its management rights follow their role like any other manage key's."""
    out, _ = create("--email", "ops@example.com", "--org", "platform", "--scope", "manage")
    key = ApiKey.objects.get(digest=key_digest(out.strip()))
    assert key.created_by == User.objects.get(email="ops@example.com")
    assert AuditEvent.objects.get(action="apikey.issue", target=key.masked).actor is None
    response = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {out.strip()}")
    assert response.status_code == 200
    with pytest.raises(CommandError, match="not an owner or admin of acme"):
        create("--email", member.email, "--org", "acme", "--scope", "manage")  # type: ignore[arg-type]


def test_createapikey_refuses_nonsense() -> None:
    with pytest.raises(CommandError):
        create("--email", "ops@example.com", "--expires-in", "0")
    assert not ApiKey.objects.exists()


def test_revokeapikey_by_id_and_by_displayed_form(org: Organization, owner: User) -> None:
    first, _ = issue_key(org, verified(owner))
    second, _ = issue_key(org, owner)
    call_command("revokeapikey", str(first.pk), stdout=io.StringIO())  # type: ignore[attr-defined]
    call_command("revokeapikey", second.masked, stdout=io.StringIO())  # type: ignore[attr-defined]
    assert set(ApiKey.objects.values_list("status", flat=True)) == {"revoked"}
    with pytest.raises(CommandError, match="No key"):
        call_command("revokeapikey", "ctx_live_zzzz", stdout=io.StringIO())


def test_admin_searches_and_revokes_through_the_service(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="findme")
    staff = OperatorFactory(email="root@example.com")
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/apikeys/apikey/", {"q": key.prefix}).content.decode()  # type: ignore[attr-defined]
    assert "findme" in page
    detail = client.get(f"/admin/apikeys/apikey/{key.pk}/change/").content.decode()  # type: ignore[attr-defined]
    assert 'name="digest"' not in detail  # shown read-only, never an input
    client.post(
        "/admin/apikeys/apikey/",
        {"action": "revoke_selected", "_selected_action": [key.pk]},  # type: ignore[attr-defined]
    )
    key.refresh_from_db()  # type: ignore[attr-defined]
    assert key.status == "revoked"  # type: ignore[attr-defined]
    assert AuditEvent.objects.filter(action="apikey.revoke", actor=staff).exists()
