"""Telling every gateway worker that a cached record changed (a key revoked, a plan or the routing table edited).

Writers call `publish_on_commit(topic, ident)` from their services; the message goes out only once the change is
committed, so a worker that re-reads on receipt sees the new row. With Redis it is a PUBLISH on one channel that
every worker subscribes to, recorded first in an outbox table in the change's own transaction and retried until
delivered (portal/outbox.py), so a Redis outage delays a message but never loses it. In embedded mode (one process)
the in-process listeners are called directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from django.db import transaction

from portal.redis import sync_redis

CHANNEL = "portal:invalidate"
log = logging.getLogger(__name__)

Listener = Callable[[str, str], None]
_listeners: list[Listener] = []
_lock = threading.Lock()


def encode(topic: str, ident: str) -> str:
    return f"{topic}:{ident}"


def decode(message: str) -> tuple[str, str]:
    topic, _, ident = message.partition(":")
    return topic, ident


def add_local_listener(listener: Listener) -> None:
    """Called for every message published by this process (embedded mode's whole delivery path)."""
    with _lock:
        _listeners.append(listener)


def remove_local_listener(listener: Listener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def notify_local_listeners(topic: str, ident: str) -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(topic, ident)


def publish(topic: str, ident: str = "") -> None:
    """Send a message now, best effort (tests and tools); changes to rows use `publish_on_commit`, which retries."""
    notify_local_listeners(topic, ident)
    client = sync_redis()
    if client is None:
        return
    try:
        client.publish(CHANNEL, encode(topic, ident))
    except Exception:
        log.warning("could not publish an invalidation for %s", topic, exc_info=True)


def publish_on_commit(topic: str, ident: str = "", *, drop_keys: Sequence[str] = ()) -> None:
    """Announce a change being made in the current transaction: once it commits, delete the Redis entries
    `drop_keys` (shared cached copies of the changed row) and tell every worker. Delivered until it succeeds."""
    if sync_redis() is None:
        transaction.on_commit(lambda: notify_local_listeners(topic, ident))
        return
    from portal.outbox import outbox_add  # the outbox's model needs the app registry; this module loads before it

    outbox_add(topic=topic, ident=ident, drop_keys=drop_keys)
