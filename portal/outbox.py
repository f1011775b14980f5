"""Delivering invalidations that must not be lost, through an outbox table in PostgreSQL.

`publish_on_commit` (portal/invalidation.py) writes a `PendingInvalidation` row in the transaction of the change and
tries to deliver it as soon as the change commits: delete the Redis copies it names (a key's cached record), then
PUBLISH the message to every gateway worker. If Redis cannot be reached then, the row stays, and the Celery beat task
`portal.tasks.deliver_invalidations` (every INVALIDATION_RETRY_SECONDS) delivers it once Redis is back; a row is
removed only after its delivery succeeded. Before the outbox, a key revoked during a Redis outage kept working from
the shared Redis copy for up to its 5-minute TTL after Redis returned (docs/faults.md).

Delivering a message twice (the commit hook and the task racing) is harmless: every message only drops caches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F

from portal.invalidation import CHANNEL, encode, notify_local_listeners
from portal.models import PendingInvalidation
from portal.redis import sync_redis

log = logging.getLogger(__name__)

BATCH = 500


def outbox_add(*, topic: str, ident: str, drop_keys: Sequence[str]) -> None:
    """Record the message with the change and deliver it once the change commits."""
    row = PendingInvalidation.objects.create(topic=topic, ident=ident, drop_keys=list(drop_keys))

    def deliver_now() -> None:
        notify_local_listeners(topic, ident)
        try:
            _deliver([row])
        except Exception as error:  # the change committed; the beat task delivers the row
            log.warning("could not deliver an invalidation for %s now (%s); it will be retried", topic, error)

    transaction.on_commit(deliver_now)


def outbox_deliver(*, limit: int = BATCH) -> int:
    """Deliver up to `limit` pending rows, oldest first; return how many went out. Rows another delivery holds are
    skipped; rows whose delivery fails stay, with their attempt count raised."""
    with transaction.atomic():
        rows = list(PendingInvalidation.objects.select_for_update(skip_locked=True).order_by("id")[:limit])
        if not rows:
            return 0
        try:
            _deliver(rows)
        except Exception as error:
            PendingInvalidation.objects.filter(pk__in=[row.pk for row in rows]).update(attempts=F("attempts") + 1)
            log.warning("could not deliver %d pending invalidations (%s); retrying later", len(rows), error)
            return 0
    return len(rows)


def outbox_pending() -> int:
    return PendingInvalidation.objects.count()


REPLAY_LIMIT = 10_000


async def outbox_pending_messages_async(*, limit: int = REPLAY_LIMIT) -> list[tuple[str, str, list[str]]]:
    """(topic, ident, drop_keys) of the oldest undelivered messages: what a gateway worker that was cut off from
    Redis replays when it resubscribes, rather than wait for the beat task (gateway/listener.py)."""
    rows = PendingInvalidation.objects.order_by("id").values_list("topic", "ident", "drop_keys")[:limit]
    return [(topic, ident, list(drop_keys)) async for topic, ident, drop_keys in rows]


def _deliver(rows: list[PendingInvalidation]) -> None:
    """Drop the named Redis entries, publish every message, then remove the rows. Raises if Redis failed."""
    client = sync_redis()
    if client is not None:
        pipe = client.pipeline(transaction=False)
        for row in rows:
            if row.drop_keys:
                pipe.delete(*row.drop_keys)
            pipe.publish(CHANNEL, encode(row.topic, row.ident))
        pipe.execute()
    PendingInvalidation.objects.filter(pk__in=[row.pk for row in rows]).delete()
