"""The invalidation outbox: a change's invalidation is recorded in the change's own transaction and delivered (the
shared Redis copies it names deleted, the message published) when the change commits, or later, by the beat task,
if Redis could not be reached then. Against a private redis-server this test stops and starts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import transaction

from accounts.models import Organization, User
from apikeys.models import ApiKey
from apikeys.records import record_cache_key
from apikeys.services import apikey_revoke
from portal.invalidation import CHANNEL
from portal.models import PendingInvalidation
from portal.outbox import outbox_deliver
from portal.redis import reset_clients
from tests.factories import issue_key, verified
from tests.faults.servers import PrivateRedis

pytestmark = pytest.mark.django_db


@pytest.fixture
def private(settings: Any) -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    settings.REDIS_URL = server.url
    reset_clients()
    yield server
    server.close()
    reset_clients()


class Heard:
    """A subscriber on the invalidation channel, as every gateway worker has one."""

    def __init__(self, url: str) -> None:
        self.pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(CHANNEL)

    def messages(self, wait: float = 0.5) -> list[str]:
        found, deadline = [], time.monotonic() + wait
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.05)
            if message is not None:
                found.append(message["data"].decode())
        return found


def cached_copy(server: PrivateRedis, key: Any) -> bytes | None:
    value: bytes | None = redis.Redis.from_url(server.url).get(record_cache_key(key.digest))
    return value


def put_copy(server: PrivateRedis, key: Any) -> None:
    redis.Redis.from_url(server.url).set(record_cache_key(key.digest), b'{"status":"active"}', ex=300)


def test_with_redis_up_the_revoke_is_delivered_at_commit_and_leaves_no_row(
    private: PrivateRedis, org: Organization, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    key, _ = issue_key(org, verified(owner))
    put_copy(private, key)
    heard = Heard(private.url)
    with django_capture_on_commit_callbacks(execute=True):
        apikey_revoke(key=key, actor=owner)  # type: ignore[arg-type]
    assert heard.messages() == [f"apikey:{key.digest}"]  # type: ignore[attr-defined]
    assert cached_copy(private, key) is None
    assert not PendingInvalidation.objects.exists()


def test_with_redis_down_the_row_waits_and_the_beat_task_delivers_it_once_redis_is_back(
    private: PrivateRedis, org: Organization, owner: User, django_capture_on_commit_callbacks: Any
) -> None:
    key, _ = issue_key(org, verified(owner))
    put_copy(private, key)
    private.stop()
    with django_capture_on_commit_callbacks(execute=True):
        apikey_revoke(key=key, actor=owner)  # type: ignore[arg-type]  # commits; the delivery fails
    assert ApiKey.objects.get(pk=key.pk).status == "revoked"  # type: ignore[attr-defined]
    row = PendingInvalidation.objects.get()
    assert (row.topic, row.ident, row.drop_keys) == ("apikey", key.digest, [record_cache_key(key.digest)])  # type: ignore[attr-defined]
    assert outbox_deliver() == 0  # still down: kept, and counted
    assert PendingInvalidation.objects.get().attempts == 1

    private.start()
    assert cached_copy(private, key) is not None  # the old record survived the restart (append-only file)
    heard = Heard(private.url)
    assert outbox_deliver() == 1
    assert heard.messages() == [f"apikey:{key.digest}"]  # type: ignore[attr-defined]
    assert cached_copy(private, key) is None
    assert not PendingInvalidation.objects.exists()


def test_a_change_rolled_back_leaves_no_invalidation(private: PrivateRedis, org: Organization, owner: User) -> None:
    key, _ = issue_key(org, verified(owner))
    with pytest.raises(RuntimeError), transaction.atomic():
        apikey_revoke(key=key, actor=owner)  # type: ignore[arg-type]
        raise RuntimeError("the request failed after the revoke")
    assert ApiKey.objects.get(pk=key.pk).status == "active"  # type: ignore[attr-defined]
    assert not PendingInvalidation.objects.exists()


def test_the_beat_schedule_runs_the_registered_delivery_task_every_second() -> None:
    from portal.celery import app
    from portal.tasks import deliver_invalidations

    app.loader.import_default_modules()
    entry = django_settings.CELERY_BEAT_SCHEDULE["portal-deliver-invalidations"]
    assert entry["task"] == deliver_invalidations.name and entry["task"] in app.tasks
    assert entry["schedule"] <= 1.0
