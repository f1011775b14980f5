"""Each gateway worker listens for invalidations and drops what changed from its caches within a second.

With Redis: one pub/sub connection per worker. If it breaks, the worker clears its caches (it may have missed a
message) and reconnects. Embedded mode: the publishing code runs in this same process and calls `dispatch` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from portal.invalidation import CHANNEL, add_local_listener, decode, remove_local_listener
from portal.redis import async_redis

log = logging.getLogger(__name__)

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

    async def _run(self) -> None:
        delay = 0.1
        while True:
            client = async_redis()
            assert client is not None
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._reset()  # anything cached before (re)subscribing may be stale
                self.ready.set()
                delay = 0.1
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
                log.warning("invalidation listener lost Redis; clearing caches and reconnecting")
                self.ready.clear()
                self._reset()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
