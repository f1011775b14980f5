"""The one way to reach Redis (fast state): shared clients built from settings.REDIS_URL.

`None` means embedded mode (no REDIS_URL): callers use their in-process implementation instead. Async clients are
kept per event loop, because a redis.asyncio connection pool is bound to the loop that created it.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from portal.netclients.redis_pipe import PipelinedRedis
from portal.settings_cache import SettingsCache

_lock = threading.Lock()
_sync_client: redis.Redis | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_hot_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PipelinedRedis] = weakref.WeakKeyDictionary()

# Fail fast rather than hang a request when Redis is unreachable; callers decide what a failure means.
_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0, "health_check_interval": 30}


_URL: SettingsCache[str | None] = SettingsCache(lambda: settings.REDIS_URL or None)


def redis_url() -> str | None:
    return _URL.get()


def sync_redis() -> redis.Redis | None:
    global _sync_client
    url = redis_url()
    if url is None:
        return None
    with _lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(url, **_OPTIONS)
        return _sync_client


def async_redis() -> aioredis.Redis | None:
    url = redis_url()
    if url is None:
        return None
    return _for_this_loop(_async_clients, lambda: aioredis.Redis.from_url(url, **_OPTIONS))


def hot_redis() -> PipelinedRedis | None:
    """The request path's client (admission, key cache, health board, usage stream): one pipelined connection per
    event loop (portal/netclients/redis_pipe.py says why). Everything else (pub/sub, scans, admin tools) uses
    `async_redis`."""
    url = redis_url()
    if url is None:
        return None
    return _for_this_loop(
        _hot_clients,
        lambda: PipelinedRedis(
            url, connect_timeout=_OPTIONS["socket_connect_timeout"], timeout=_OPTIONS["socket_timeout"]
        ),
    )


def _for_this_loop[C](clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, C], make: Callable[[], C]) -> C:
    loop = asyncio.get_running_loop()
    client = clients.get(loop)
    if client is None:
        client = clients[loop] = make()
    return client


async def aclose_clients() -> None:
    """Close this event loop's clients (tests that run each case on its own loop)."""
    loop = asyncio.get_running_loop()
    for clients in (_async_clients, _hot_clients):
        client = clients.pop(loop, None)
        if client is not None:
            await client.aclose()


def reset_clients() -> None:
    """Forget cached clients (tests that change REDIS_URL, and child processes after fork)."""
    global _sync_client
    with _lock:
        _sync_client = None
        _async_clients.clear()
        _hot_clients.clear()
