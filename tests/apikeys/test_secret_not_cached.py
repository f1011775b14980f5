"""Every response that shows a key's secret tells browsers and proxies not to keep it (Cache-Control and, for
HTTP/1.0 proxies, Pragma); a cached copy would hand the secret to the next user of the machine or proxy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import Organization, User
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(verified(user))
    return client


def assert_not_cacheable(response: Any) -> None:
    assert "ctx_live_" in response.content.decode()  # the response does carry a secret
    assert response["Cache-Control"] == "no-store"
    assert response["Pragma"] == "no-cache"


def test_api_create_and_rotate_are_not_cacheable(org: Organization, owner: User) -> None:
    client = signed_in(owner)
    created = client.post("/api/v1/keys", json.dumps({"name": "ci"}), content_type="application/json")
    assert created.status_code == 201
    assert_not_cacheable(created)
    rotated = client.post(f"/api/v1/keys/{created.json()['id']}/rotate", "{}", content_type="application/json")
    assert rotated.status_code == 201
    assert_not_cacheable(rotated)


def test_api_reads_without_a_secret_keep_the_default_headers(org: Organization, owner: User) -> None:
    issue_key(org, verified(owner))
    listing = signed_in(owner).get("/api/v1/keys")
    assert "Pragma" not in listing


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx-panel"])
def test_the_new_key_panel_is_not_cacheable_after_create_and_rotate(org: Organization, owner: User, htmx: bool) -> None:
    client = signed_in(owner)
    headers = {"HX-Request": "true"} if htmx else {}
    created = client.post("/orgs/acme/keys/", {"name": "bot", "scopes": ["inference"]}, headers=headers)
    assert created.status_code == 200
    assert_not_cacheable(created)
    key, _ = issue_key(org, owner)
    rotated = client.post(f"/orgs/acme/keys/{key.pk}/rotate", {"grace": "1h"}, headers=headers)  # type: ignore[attr-defined]
    assert rotated.status_code == 200
    assert_not_cacheable(rotated)
