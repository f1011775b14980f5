"""`next` after signing in (wallet or password) and after switching organization stays on this site."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client, override_settings

from accounts.models import User
from tests.accounts.test_siwe import ALICE, challenge, sign
from tests.factories import TEST_PASSWORD, verified

pytestmark = pytest.mark.django_db

# Each of these a browser takes to another site (or to a script): backslashes read as slashes, tabs and newlines
# dropped, a leading space trimmed.
ELSEWHERE = [
    "/\\evil.example/",
    "//evil.example",
    "https://evil.example",
    "/\\\\evil",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "///evil.example",
    "javascript:alert(1)",
    "https://testserver.evil.example/",
]


def wallet_sign_in(client: Client, next_url: str) -> str:
    _, body = challenge(client, ALICE.address)
    response = client.post(
        "/accounts/siwe/verify",
        json.dumps({"message": body["message"], "signature": sign(body["message"]), "next": next_url}),
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return str(response.json()["redirect"])


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_wallet_sign_in_never_sends_the_browser_to_another_site(client: Client, next_url: str) -> None:
    assert wallet_sign_in(client, next_url) == "/"


def test_wallet_sign_in_honours_a_path_of_this_site(client: Client) -> None:
    assert wallet_sign_in(client, "/orgs/acme/keys/?page=2") == "/orgs/acme/keys/?page=2"


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_the_wallet_page_does_not_carry_another_sites_address(client: Client, next_url: str) -> None:
    html = client.get("/accounts/siwe/", {"next": next_url}).content.decode()
    assert 'data-next=""' in html
    assert "evil" not in html


def test_the_wallet_page_carries_a_path_of_this_site(client: Client) -> None:
    html = client.get("/accounts/siwe/", {"next": "/orgs/acme/keys/"}).content.decode()
    assert 'data-next="/orgs/acme/keys/"' in html


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_switching_organization_never_redirects_to_another_site(client: Client, owner: User, next_url: str) -> None:
    client.force_login(owner)
    response = client.post("/orgs/switch", {"organization": "acme", "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == "/"


def test_switching_organization_honours_a_path_of_this_site(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.post("/orgs/switch", {"organization": "acme", "next": "/orgs/acme/keys/"})
    assert response["Location"] == "/orgs/acme/keys/"


@pytest.mark.parametrize("next_url", ELSEWHERE)
def test_password_sign_in_never_redirects_to_another_site(client: Client, owner: User, next_url: str) -> None:
    verified(owner)
    response = client.post(
        f"/accounts/login/?next={_quote(next_url)}", {"login": owner.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert "evil" not in response["Location"]
    assert response["Location"].startswith("/") and not re.match(r"^/[/\\\s]", response["Location"])


def test_password_sign_in_honours_a_path_of_this_site(client: Client, owner: User) -> None:
    verified(owner)
    response = client.post("/accounts/login/?next=/orgs/acme/keys/", {"login": owner.email, "password": TEST_PASSWORD})
    assert response["Location"] == "/orgs/acme/keys/"


def test_the_login_pages_wallet_link_does_not_carry_another_sites_next(client: Client) -> None:
    html = client.get("/accounts/login/", {"next": "/\\evil.example/"}).content.decode()
    link = re.search(r'href="(/accounts/siwe/[^"]*)"', html)
    assert link is not None
    wallet_page = client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert 'data-next=""' in wallet_page


def test_over_https_an_absolute_next_must_be_https_too(client: Client, owner: User) -> None:
    client.force_login(owner)
    plain = client.post("/orgs/switch", {"organization": "acme", "next": "http://testserver/orgs/"}, secure=True)
    assert plain["Location"] == "/"
    secure = client.post("/orgs/switch", {"organization": "acme", "next": "https://testserver/orgs/"}, secure=True)
    assert secure["Location"] == "https://testserver/orgs/"


@override_settings(PRODUCTION=True)
def test_in_production_an_absolute_next_must_be_https_whatever_the_request_says(client: Client, owner: User) -> None:
    client.force_login(owner)
    response = client.post("/orgs/switch", {"organization": "acme", "next": "http://testserver/orgs/"})
    assert response["Location"] == "/"


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
