"""/api/v1/keys: session or manage-key auth, organization scoping, strict input."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from accounts.models import Organization, User
from apikeys.keyformat import generate_key
from apikeys.models import ApiKey
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def session(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, path: str, body: object, **headers: str) -> object:
    return client.post(path, json.dumps(body), content_type="application/json", **headers)


def test_create_returns_the_secret_once_and_list_never_does(org: Organization, owner: User) -> None:
    client = session(verified(owner))
    response = post(client, "/api/v1/keys", {"name": "ci", "scopes": ["inference"], "metadata": {"env": "ci"}})
    assert response.status_code == 201  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["secret"].startswith("ctx_live_")
    listing = client.get("/api/v1/keys").json()
    assert listing[0]["id"] == body["id"]
    assert "secret" not in listing[0]
    assert listing[0]["masked"] == body["masked"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "colour": "red"}, "colour"),
        ({"name": "x" * 101}, "name"),
        ({"name": "x", "scopes": ["root"]}, "scopes"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "metadata": "env=prod"}, "metadata"),
        ({"name": "x", "metadata": {"env": {"nested": True}}}, "metadata"),
        ({"name": "x", "rate_limit": -3}, "rate_limit"),
        ({}, "name"),
    ],
)
def test_bad_input_gets_400_with_field_errors_and_creates_nothing(
    org: Organization, owner: User, payload: dict[str, object], field: str
) -> None:
    response = post(session(verified(owner)), "/api/v1/keys", payload)
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert field in response.json()  # type: ignore[attr-defined]
    assert not ApiKey.objects.exists()


def test_a_manage_key_can_manage_its_own_organization_only(org: Organization, owner: User, outsider: User) -> None:
    _, manage_secret = issue_key(org, verified(owner), scopes=["manage"])
    other, _ = issue_key(Organization.objects.get(slug="elsewhere"), verified(outsider))
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {manage_secret}"}
    response = post(client, "/api/v1/keys", {"name": "made by a key"}, **auth)
    assert response.status_code == 201  # type: ignore[attr-defined]
    assert ApiKey.objects.get(name="made by a key").organization == org
    assert client.get(f"/api/v1/keys/{other.pk}", **auth).status_code == 404  # type: ignore[attr-defined]
    assert client.post(f"/api/v1/keys/{other.pk}/revoke", **auth).status_code == 404  # type: ignore[attr-defined]
    assert client.get("/api/v1/keys?organization=elsewhere", **auth).status_code == 404


def test_an_inference_key_cannot_use_the_management_api(org: Organization, owner: User) -> None:
    _, secret = issue_key(org, verified(owner), scopes=["inference"])
    response = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 403
    assert "manage scope" in response.json()["detail"]


def test_a_mistyped_key_is_told_apart_from_an_unknown_one(org: Organization, owner: User) -> None:
    _, secret = issue_key(org, verified(owner), scopes=["manage"])
    typo = secret[:20] + ("x" if secret[20] != "x" else "y") + secret[21:]
    response = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {typo}")
    assert response.status_code == 401
    assert "typo" in response.json()["detail"]
    unknown = Client().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {generate_key()}")
    assert unknown.status_code == 401
    assert "typo" not in unknown.json()["detail"]


def test_revoke_by_delete_or_post_and_rotate(org: Organization, owner: User) -> None:
    client = session(verified(owner))
    first, _ = issue_key(org, owner)
    second, _ = issue_key(org, owner)
    assert client.delete(f"/api/v1/keys/{first.pk}").json()["status"] == "revoked"  # type: ignore[attr-defined]
    assert client.post(f"/api/v1/keys/{second.pk}/revoke").json()["status"] == "revoked"  # type: ignore[attr-defined]
    third, _ = issue_key(org, owner)
    rotated = post(client, f"/api/v1/keys/{third.pk}/rotate", {"grace": "1h"})  # type: ignore[attr-defined]
    assert rotated.status_code == 201  # type: ignore[attr-defined]
    assert rotated.json()["secret"].startswith("ctx_live_")  # type: ignore[attr-defined]
    bad = post(client, f"/api/v1/keys/{third.pk}/rotate", {"grace": "forever"})  # type: ignore[attr-defined]
    assert bad.status_code == 400  # type: ignore[attr-defined]


def test_update_is_strict_too(org: Organization, owner: User) -> None:
    client = session(verified(owner))
    key, _ = issue_key(org, owner, name="a")
    ok = client.patch(f"/api/v1/keys/{key.pk}", json.dumps({"name": "b"}), content_type="application/json")  # type: ignore[attr-defined]
    assert ok.json()["name"] == "b"
    bad = client.patch(f"/api/v1/keys/{key.pk}", json.dumps({"digest": "x"}), content_type="application/json")  # type: ignore[attr-defined]
    assert bad.status_code == 400


def test_members_read_but_cannot_write(org: Organization, owner: User, member: User) -> None:
    issue_key(org, verified(owner))
    client = session(verified(member))
    assert len(client.get("/api/v1/keys").json()) == 1
    assert post(client, "/api/v1/keys", {"name": "x"}).status_code == 403  # type: ignore[attr-defined]


def test_outsiders_and_anonymous_see_nothing(org: Organization, owner: User, outsider: User) -> None:
    key, _ = issue_key(org, verified(owner))
    client = session(outsider)
    assert client.get(f"/api/v1/keys/{key.pk}").status_code == 404  # type: ignore[attr-defined]
    assert client.get("/api/v1/keys?organization=acme").status_code == 404
    assert client.get("/api/v1/keys").json() == []  # their own organization has none
    assert Client().get("/api/v1/keys").status_code in (401, 403)


def test_schema_and_docs_are_served_without_a_cdn(client: Client) -> None:
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/keys" in schema.content
    docs = client.get("/api/docs/").content.decode()
    # Every script and stylesheet comes from this site (a bare "cdn" search also hit the random CSP nonce).
    links = re.findall(r'(?:src|href)="([^"]*)"', docs)
    assert links and all(link.startswith("/") and not link.startswith("//") for link in links), links
    assert "/static/drf_spectacular_sidecar/" in docs
