from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/accounts/email/", "/accounts/password/change/", "/accounts/wallets/"])
def test_account_settings_pages_share_one_navigation(client: Client, owner: User, path: str) -> None:
    client.force_login(owner)
    html = client.get(path).content.decode()
    assert 'aria-label="Account settings"' in html
    assert "/accounts/wallets/" in html


def test_the_navigation_offers_the_organization_switcher(client: Client, owner: User) -> None:
    client.force_login(owner)
    html = client.get("/accounts/email/").content.decode()
    assert 'name="organization"' in html
    assert ">Acme<" in html
