"""Key pages: the secret shown once, revoke with confirmation, rotate, edit; roles and organization scoping."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts.models import Organization, User
from apikeys.keyformat import key_digest
from apikeys.models import ApiKey
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_creating_a_key_shows_the_secret_once_with_snippets(org: Organization, owner: User) -> None:
    client = as_user(verified(owner))
    response = client.post("/orgs/acme/keys/", {"name": "chatbot", "scopes": ["inference"]})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    secret = re.search(r"ctx_live_[0-9A-Za-z]{49}", html).group(0)  # type: ignore[union-attr]
    key = ApiKey.objects.get()
    assert key.digest == key_digest(secret)
    assert "http://127.0.0.1:8000/v1/chat/completions" in html  # curl snippet with the portal's base URL
    assert 'base_url="http://127.0.0.1:8000/v1"' in html  # OpenAI SDK snippet
    listing = client.get("/orgs/acme/keys/").content.decode()
    assert secret not in listing
    assert key.masked in listing


def test_the_new_key_snippets_name_a_model_the_plan_allows(org: Organization, owner: User) -> None:
    from routing.models import ModelAlias, RouterPool
    from tests.factories import PlanFactory, SubscriptionFactory

    pool = RouterPool.objects.create(slug="gemma4", name="Gemma")
    ModelAlias.objects.create(alias="aaa-not-in-plan", pool=pool)
    gemma = ModelAlias.objects.create(alias="gemma-4-26b", pool=pool)
    SubscriptionFactory(organization=org, plan=PlanFactory(models=[gemma]))

    html = as_user(verified(owner)).post("/orgs/acme/keys/", {"name": "bot", "scopes": ["inference"]}).content.decode()

    assert '"model": "gemma-4-26b"' in html  # curl
    assert 'model="gemma-4-26b"' in html  # OpenAI SDK
    assert "gpt-oss-20b" not in html and "aaa-not-in-plan" not in html


def test_members_see_keys_but_cannot_change_them(org: Organization, owner: User, member: User) -> None:
    key, _ = issue_key(org, verified(owner), name="shared")
    client = as_user(verified(member))
    page = client.get("/orgs/acme/keys/").content.decode()
    assert "shared" in page
    assert "Create a key" not in page
    assert client.post("/orgs/acme/keys/", {"name": "x", "scopes": ["inference"]}).status_code == 403
    assert client.post(f"/orgs/acme/keys/{key.pk}/revoke").status_code == 403  # type: ignore[attr-defined]
    assert client.post(f"/orgs/acme/keys/{key.pk}/rotate", {"grace": "none"}).status_code == 403  # type: ignore[attr-defined]
    assert client.post(f"/orgs/acme/keys/{key.pk}/", {"name": "renamed"}).status_code == 403  # type: ignore[attr-defined]
    assert ApiKey.objects.get().name == "shared"
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("suffix", ["", "revoke", "rotate"])
def test_outsiders_get_404_for_every_key_page(org: Organization, owner: User, outsider: User, suffix: str) -> None:
    key, _ = issue_key(org, verified(owner))
    client = as_user(outsider)
    path = f"/orgs/acme/keys/{key.pk}/{suffix}"  # type: ignore[attr-defined]
    assert client.get("/orgs/acme/keys/").status_code == 404
    assert client.post(path, {"grace": "none", "name": "x"}).status_code == 404
    assert ApiKey.objects.get().effective_status() == "active"


def test_a_key_of_another_organization_is_404_even_for_a_manager(
    org: Organization, owner: User, outsider: User
) -> None:
    other_key, _ = issue_key(Organization.objects.get(slug="elsewhere"), verified(outsider))
    client = as_user(owner)
    assert client.get(f"/orgs/acme/keys/{other_key.pk}/").status_code == 404  # type: ignore[attr-defined]
    assert client.post(f"/orgs/acme/keys/{other_key.pk}/revoke").status_code == 404  # type: ignore[attr-defined]


def test_revoke_asks_first_without_javascript_then_revokes(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="old")
    client = as_user(owner)
    confirm = client.get(f"/orgs/acme/keys/{key.pk}/revoke")  # type: ignore[attr-defined]
    assert "Revoke old?" in confirm.content.decode()
    assert ApiKey.objects.get().status == "active"
    response = client.post(f"/orgs/acme/keys/{key.pk}/revoke")  # type: ignore[attr-defined]
    assert response.status_code == 302
    assert ApiKey.objects.get().status == "revoked"


def test_revoke_over_htmx_returns_the_refreshed_list(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="old")
    response = as_user(owner).post(f"/orgs/acme/keys/{key.pk}/revoke", HTTP_HX_REQUEST="true")  # type: ignore[attr-defined]
    html = response.content.decode()
    assert "<html" not in html
    assert "Revoked" in html


def test_rotate_shows_the_new_secret_and_when_the_old_one_stops(org: Organization, owner: User) -> None:
    key, old_secret = issue_key(org, verified(owner))
    response = as_user(owner).post(f"/orgs/acme/keys/{key.pk}/rotate", {"grace": "24h"})  # type: ignore[attr-defined]
    html = response.content.decode()
    new_secret = re.search(r"ctx_live_[0-9A-Za-z]{49}", html).group(0)  # type: ignore[union-attr]
    assert new_secret != old_secret
    assert "keeps working until" in html


def test_editing_settings_with_bad_labels_explains_and_changes_nothing(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="svc")
    client = as_user(owner)
    response = client.post(f"/orgs/acme/keys/{key.pk}/", {"name": "svc2", "labels": "no equals sign"})  # type: ignore[attr-defined]
    assert response.status_code == 422
    assert "name=value" in response.content.decode()
    assert ApiKey.objects.get().name == "svc"
    client.post(f"/orgs/acme/keys/{key.pk}/", {"name": "svc2", "labels": "env=prod\nteam=ml"})  # type: ignore[attr-defined]
    assert ApiKey.objects.get().metadata == {"env": "prod", "team": "ml"}


def test_an_unverified_owner_is_told_to_verify_first(org: Organization, owner: User) -> None:
    client = as_user(owner)
    assert "Verify your email address" in client.get("/orgs/acme/keys/").content.decode()
    response = client.post("/orgs/acme/keys/", {"name": "x", "scopes": ["inference"]})
    assert response.status_code == 422
    assert not ApiKey.objects.exists()
