"""Each gateway worker listens for invalidations and drops what changed from its caches within a second.

With Redis: one pub/sub connection per worker. If it breaks, the worker clears its caches (it may have missed a
message), tries to reconnect at least every RECONNECT_MAX_DELAY seconds, and once subscribed clears them again and
replays the outbox (portal/outbox.py): the changes committed while Redis was away, whose messages could not be
published yet. The key cache also re-checks every key it held against the database rather than the Redis copy
(gateway/keycache.py). So a key revoked during a Redis outage is refused within a second of Redis coming back, by
every worker. Embedded mode: the publishing code runs in this same process and calls `dispatch` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from gateway.db import read_database
from portal.invalidation import CHANNEL, add_local_listener, decode, remove_local_listener
from portal.outbox import outbox_pending_messages_async
from portal.redis import async_redis

log = logging.getLogger(__name__)

# Trying a Redis that is down costs one refused connection; waiting longer would only delay hearing messages again.
RECONNECT_FIRST_DELAY = 0.1
RECONNECT_MAX_DELAY = 0.5

Handler = Callable[[str, str], None]
Reset = Callable[[], None]


class InvalidationListener:
    def __init__(self, handle: Handler, reset: Reset) -> None:
        self._handle = handle
        self._reset = reset
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def dispatch(self, topic: str, ident: str) -> None:
        try:
            self._handle(topic, ident)
        except Exception:
            log.exception("invalidation handler failed for %s", topic)
            self._reset()

    async def start(self) -> None:
        add_local_listener(self.dispatch)
        if async_redis() is None:
            self.ready.set()
            return
        self._task = asyncio.create_task(self._run(), name="gateway-invalidation-listener")

    async def stop(self) -> None:
        remove_local_listener(self.dispatch)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _replay_pending(self, client: aioredis.Redis) -> None:
        """Deliver what the outbox holds (changes committed while Redis was away, not yet published by the beat
        task): delete the Redis copies they name, so neither this worker nor any other reads the old record from
        there, and handle each message here. Publishing them and removing the rows stays the beat task's job."""
        try:
            pending = await read_database(outbox_pending_messages_async)
            drop = [key for _, _, keys in pending for key in keys]
            for start in range(0, len(drop), 1000):
                await client.delete(*drop[start : start + 1000])
        except Exception:
            log.warning("invalidation listener could not replay the outbox; the beat task will deliver it")
            return
        for topic, ident, _ in pending:
            self.dispatch(topic, ident)
        if pending:
            log.info("invalidation listener replayed %d undelivered invalidations", len(pending))

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_DELAY
        lost = False
        while True:
            client = async_redis()
            assert client is not None
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._reset()  # anything cached before (re)subscribing may be stale
                await self._replay_pending(client)
                self.ready.set()
                if lost:
                    log.info("invalidation listener resubscribed; caches cleared, held keys re-checked")
                lost = False
                delay = RECONNECT_FIRST_DELAY
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is None or message.get("type") != "message":
                        continue
                    data = message["data"]
                    topic, ident = decode(data.decode() if isinstance(data, bytes) else str(data))
                    # This process's own messages arrive here too; dropping a cache entry twice is harmless.
                    self.dispatch(topic, ident)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception:
                if not lost:  # once per outage, not once per attempt
                    log.warning("invalidation listener lost Redis; clearing caches and reconnecting")
                lost = True
                self.ready.clear()
                self._reset()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
