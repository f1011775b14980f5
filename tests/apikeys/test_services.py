"""Key services: issue, update, revoke, rotate with grace, expiry; the secret never stored or logged."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import AuditEvent, Organization, User
from apikeys.errors import ApiKeyError
from apikeys.keyformat import key_digest
from apikeys.models import ApiKey
from apikeys.selectors import apikey_record_by_digest
from apikeys.services import apikey_revoke, apikey_rotate, apikey_update, apikeys_mark_expired
from tests.factories import issue_key, verified

pytestmark = pytest.mark.django_db


def test_the_secret_is_never_stored_or_logged(org: Organization, owner: User, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key, secret = issue_key(org, verified(owner), name="prod")
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM apikeys_apikey")
        row_text = repr(cursor.fetchall())
        cursor.execute("SELECT data::text, target FROM accounts_auditevent")
        audit_text = repr(cursor.fetchall())
    body = secret[9:-6]
    assert body not in row_text
    assert body not in audit_text
    assert secret not in caplog.text
    assert key.digest == key_digest(secret)  # type: ignore[attr-defined]
    assert key.masked == f"{secret[:13]}…{secret[-4:]}"  # type: ignore[attr-defined]


def test_unverified_people_cannot_issue_keys(org: Organization, owner: User) -> None:
    with pytest.raises(ApiKeyError, match="Verify your email"):
        issue_key(org, owner)
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"expires_at": "past"}, "expires_at"),
        ({"metadata": ["not", "a", "dict"]}, "metadata"),
        ({"metadata": {"env": 5}}, "metadata"),
        ({"metadata": {f"k{i}": "v" for i in range(21)}}, "metadata"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"allowed_models": "gpt-oss-20b"}, "allowed_models"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_created(
    org: Organization, owner: User, options: dict[str, object], field: str
) -> None:
    if options.get("expires_at") == "past":
        options["expires_at"] = timezone.now() - timedelta(minutes=1)
    with pytest.raises(ApiKeyError) as error:
        issue_key(org, verified(owner), **options)
    assert error.value.field == field
    assert not ApiKey.objects.exists()


def test_revocation_is_recorded_and_audited(org: Organization, owner: User) -> None:
    key, secret = issue_key(org, verified(owner))
    apikey_revoke(key=key, actor=owner)  # type: ignore[arg-type]
    key.refresh_from_db()  # type: ignore[attr-defined]
    assert key.effective_status() == "revoked"  # type: ignore[attr-defined]
    assert key.revoked_by == owner  # type: ignore[attr-defined]
    record = apikey_record_by_digest(digest=key_digest(secret))
    assert record is not None and record.state(0) == "revoked"
    assert AuditEvent.objects.filter(action="apikey.revoke", organization=org).exists()


def test_rotation_with_grace_keeps_the_old_key_until_the_grace_ends(org: Organization, owner: User) -> None:
    old, old_secret = issue_key(org, verified(owner), name="svc", metadata={"env": "prod"})
    issued = apikey_rotate(key=old, actor=owner, grace="1h")  # type: ignore[arg-type]
    assert issued.secret != old_secret
    assert issued.key.name == "svc" and issued.key.metadata == {"env": "prod"}
    old.refresh_from_db()  # type: ignore[attr-defined]
    now = timezone.now()
    assert old.effective_status(now) == "active"  # type: ignore[attr-defined]
    assert old.effective_status(now + timedelta(minutes=59)) == "active"  # type: ignore[attr-defined]
    assert old.effective_status(now + timedelta(minutes=61)) == "expired"  # type: ignore[attr-defined]
    record = apikey_record_by_digest(digest=key_digest(old_secret))
    assert record is not None
    later_ms = int((now + timedelta(minutes=61)).timestamp() * 1000)
    assert record.state(later_ms) == "expired"
    assert AuditEvent.objects.filter(action="apikey.rotate").exists()


def test_rotation_without_grace_stops_the_old_key_at_once(org: Organization, owner: User) -> None:
    old, _ = issue_key(org, verified(owner))
    apikey_rotate(key=old, actor=owner, grace="none")  # type: ignore[arg-type]
    old.refresh_from_db()  # type: ignore[attr-defined]
    assert old.effective_status() == "expired"  # type: ignore[attr-defined]
    with pytest.raises(ApiKeyError):
        apikey_rotate(key=old, actor=owner)  # type: ignore[arg-type]


def test_expired_keys_are_swept_to_expired(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), expires_at=timezone.now() + timedelta(seconds=30))
    assert apikeys_mark_expired(now=timezone.now() + timedelta(minutes=1)) == 1
    key.refresh_from_db()  # type: ignore[attr-defined]
    assert key.status == "expired"  # type: ignore[attr-defined]


def test_update_changes_only_what_is_given(org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner), name="a", metadata={"env": "dev"})
    apikey_update(key=key, actor=owner, name="b", rate_limit=5)  # type: ignore[arg-type]
    key.refresh_from_db()  # type: ignore[attr-defined]
    assert (key.name, key.rate_limit_requests, key.metadata) == ("b", 5, {"env": "dev"})  # type: ignore[attr-defined]
    with pytest.raises(ApiKeyError, match="Unknown field"):
        apikey_update(key=key, actor=owner, digest="x")  # type: ignore[arg-type]
