"""Hostile input on the Django side gets a 4xx that names what is wrong, never a server error: JSON nested thousands
deep, NUL and lone surrogates in keys and values (PostgreSQL cannot store NUL, UTF-8 cannot encode a lone
surrogate), numbers no field can hold, forged cursors, and NUL in form fields and URLs of the pages.

The body fuzzer over HTTP is tests/contract/test_management_bodies.py; these are the cases a review found, each
checked at the status and the field it names."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client

from accounts.models import Organization, User
from apikeys.models import ApiKey
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def session(user: User) -> Client:
    client = Client(raise_request_exception=False)  # a server error is an answer to assert on, not an exception
    client.force_login(verified(user))
    return client


def post_text(client: Client, path: str, text: str, method: str = "post") -> Any:
    return getattr(client, method)(path, text, content_type="application/json")


DEEP_LIST = '{"name": "x", "metadata": ' + "[" * 5000 + "]" * 5000 + "}"
DEEP_OBJECT = '{"name": "x", "metadata": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (DEEP_LIST, "metadata" + "[0]" * 31),  # the 33rd level is where it stops
        (DEEP_OBJECT, "metadata" + ".a" * 31),
        ('{"name": "x", "metadata": {"te\\u0000am": "a"}}', "metadata.te\\u0000am"),
        ('{"name": "x", "metadata": {"te\\ud800am": "a"}}', "metadata.te\\ud800am"),
        ('{"name": "x", "metadata": {"team": "a\\udfff"}}', "metadata.team"),
        ('{"name": "x", "allowed_models": ["ok", "gpt\\u0000"]}', "allowed_models[1]"),
        ('{"name": "x\\u0000"}', "name"),
        ('{"name": "x", "c\\ud800lour": "red"}', "c\\ud800lour"),  # an unknown field, named without breaking UTF-8
        ('{"name": "x", "rate_limit": 1' + "0" * 5000 + "}", "rate_limit"),
        ('{"name": "x", "rate_limit": 1e999}', "rate_limit"),
        ('{"name": "x", "rate_limit": NaN}', "rate_limit"),
        ('[{"name": "x\\u0000"}]', "[0].name"),
    ],
    ids=lambda value: value[:40] if len(value) < 200 else f"{len(value)} characters",
)
def test_a_hostile_body_is_a_400_naming_the_value_at_fault(
    org: Organization, owner: User, body: str, field: str
) -> None:
    response = post_text(session(owner), "/api/v1/keys", body)

    assert response.status_code == 400, response.content[:300]
    assert list(response.json()) == [field]
    assert isinstance(response.json()[field][0], str)
    assert not ApiKey.objects.exists()


def test_an_update_with_nul_in_a_metadata_key_changes_nothing(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="kept", metadata={"env": "ci"})
    client = session(owner)

    response = post_text(client, f"/api/v1/keys/{key.pk}", '{"metadata": {"\\u0000": "x"}}', method="patch")  # type: ignore[attr-defined]

    assert response.status_code == 400
    assert response.json() == {"metadata.\\u0000": ["The NUL character (\\u0000) is not allowed in a key."]}
    key.refresh_from_db()  # type: ignore[attr-defined]
    assert key.metadata == {"env": "ci"}  # type: ignore[attr-defined]


def test_a_rotation_with_a_deep_body_is_refused_and_the_key_stays(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="kept")
    response = post_text(session(owner), f"/api/v1/keys/{key.pk}/rotate", "[" * 3000 + "]" * 3000)  # type: ignore[attr-defined]

    assert response.status_code == 400
    assert list(response.json()) == ["[0]" * 32]
    assert ApiKey.objects.count() == 1


def test_a_body_nested_to_the_limit_is_still_read(org: Organization, owner: User) -> None:
    """32 levels pass the parser (the serializer then says what metadata must be)."""
    response = post_text(session(owner), "/api/v1/keys", '{"name": "x", "metadata": ' + "[" * 31 + "]" * 31 + "}")
    assert response.status_code == 400
    assert list(response.json()) == ["metadata"]
    assert "[0]" not in json.dumps(response.json())


def test_a_form_encoded_body_is_415_the_api_reads_json_only(org: Organization, owner: User) -> None:
    response = session(owner).post(
        "/api/v1/keys", "name=x&metadata.te%00am=a", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert not ApiKey.objects.exists()


def _cursor(query: str) -> str:
    return base64.b64encode(query.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("p=2024"),  # a position that is no time
        _cursor("p=%00"),  # NUL, refused by PostgreSQL
        _cursor("p=2026-01-01 00:00:00"),  # no offset: read in the server's zone, never given out
        _cursor("p=9999-12-31 23:59:59-23:00"),  # an offset PostgreSQL refuses
        "not base64!",
    ],
)
def test_a_forged_cursor_is_a_400_naming_cursor(org: Organization, member: User, cursor: str) -> None:
    response = session(member).get("/api/v1/requests", {"organization": "acme", "cursor": cursor})

    assert response.status_code == 400, response.content[:300]
    assert list(response.json()) == ["cursor"]


def test_a_nul_in_the_organization_parameter_is_a_400_naming_it(org: Organization, member: User) -> None:
    for path in ("/api/v1/requests", "/api/v1/usage", "/api/v1/keys"):
        response = session(member).get(path + "?organization=ac%00me")
        assert response.status_code == 400, path
        assert list(response.json()) == ["organization"]


def test_a_nul_in_the_organization_switch_form_is_a_404_not_a_server_error(org: Organization, owner: User) -> None:
    response = session(owner).post(
        "/orgs/switch", "organization=ac%00me&next=/", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 404


def test_a_nul_in_a_request_id_in_the_page_url_is_a_404(org: Organization, member: User) -> None:
    assert session(member).get(f"/orgs/{org.slug}/requests/req%00x/").status_code == 404


@pytest.mark.parametrize("path", ["/accounts/siwe/challenge", "/accounts/siwe/verify"])
def test_sign_in_with_ethereum_refuses_a_deep_body_with_a_400(db: None, path: str) -> None:
    response = Client(raise_request_exception=False).post(
        path, '{"address": ' + "[" * 5000 + "]" * 5000 + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("address[0]")
    assert "Nested deeper than 32 levels" in response.json()["error"]


def test_a_body_over_64_kib_is_a_413_before_it_is_read(org: Organization, owner: User) -> None:
    body = json.dumps({"name": "x", "metadata": {f"k{n}": "v" * 100 for n in range(700)}})
    response = post_text(session(owner), "/api/v1/keys", body)
    assert response.status_code == 413
    assert "64 KiB" in response.json()["detail"]
    assert not ApiKey.objects.exists()
