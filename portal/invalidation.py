"""Telling every gateway worker that a cached record changed (a key revoked, a plan or the routing table edited).

Writers call `publish_on_commit(topic, ident)` from their services; the message goes out only once the change is
committed, so a worker that re-reads on receipt sees the new row. With Redis it is a PUBLISH on one channel that
every worker subscribes to; in embedded mode (one process) the in-process listeners are called directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

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


def publish(topic: str, ident: str = "") -> None:
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener(topic, ident)
    client = sync_redis()
    if client is None:
        return
    try:
        client.publish(CHANNEL, encode(topic, ident))
    except Exception:  # a lost message is covered by the caches' short TTL; the write itself already committed
        log.warning("could not publish an invalidation for %s", topic, exc_info=True)


def publish_on_commit(topic: str, ident: str = "") -> None:
    transaction.on_commit(lambda: publish(topic, ident))
