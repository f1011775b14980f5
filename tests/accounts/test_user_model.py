from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import User


@pytest.mark.django_db
def test_email_is_the_login_and_is_stored_lower_case() -> None:
    user = User.objects.create_user("Ada@Example.COM", "a-long-password-1")
    assert user.email == "ada@example.com"
    assert User.USERNAME_FIELD == "email"
    assert user.check_password("a-long-password-1")


@pytest.mark.django_db
def test_an_address_belongs_to_one_account_whatever_its_case() -> None:
    User.objects.create_user("ada@example.com", "a-long-password-1")
    with pytest.raises(ValidationError, match="already exists"):
        User.objects.create_user("ADA@example.com", "another-password-2")
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_wallet_only_accounts_have_no_email_and_no_usable_password() -> None:
    first = User.objects.create_user()
    second = User.objects.create_user()
    assert first.email is None and second.email is None
    assert not first.has_usable_password()
