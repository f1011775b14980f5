"""Database reads from the gateway (cache misses only), with the connection upkeep Django does per request.

The gateway is a raw ASGI app: Django's request_started/finished signals never fire, so nobody closes a connection
that broke (a PostgreSQL restart or failover) or outlived CONN_MAX_AGE, and the health check CONN_HEALTH_CHECKS asks
for never runs again. Without this, one database restart leaves the async ORM's thread holding a dead connection for
the life of the worker. Here every read first does that upkeep, and a read that still fails because its connection
broke meanwhile is tried once more on a new one (reads only: repeating them is safe).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from django.db import InterfaceError, OperationalError, close_old_connections

# The async ORM runs queries in the thread-sensitive executor: the upkeep must run in that same thread.
_upkeep = sync_to_async(close_old_connections, thread_sensitive=True)


async def read_database[T](load: Callable[[], Awaitable[T]]) -> T:
    await _upkeep()
    try:
        return await load()
    except (OperationalError, InterfaceError):
        await _upkeep()  # the failed query marked the connection; this closes it, the retry opens a new one
        return await load()
