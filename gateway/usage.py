"""Sending lifecycle events to the usage stream without slowing responses down.

`accepted` and `refused` events are written before the response goes on (one round trip): an admitted request has
its record in Redis before anything is forwarded, so a worker that dies mid-request leaves an `accepted` event
that reconciliation closes as `unknown`. `forwarded` and `completed` events are batched and flushed in the
background every few milliseconds; if Redis refuses them they are kept (up to a bound) and retried. A `forwarded`
event whose request completed before the flush is not written: the `completed` event carries its time and target, so
a request that finishes quickly costs two stream entries, not three; the gateway hands such a `forwarded` event over
unmade (`record_unless_completed`), so most requests never build it at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from asgiref.sync import sync_to_async

from metering.events import LifecycleEvent
from metering.stream import publish_events
from portal.redis import redis_url

log = logging.getLogger(__name__)

FLUSH_INTERVAL_SECONDS = 0.02
FLUSH_BATCH = 500
MAX_PENDING = 200_000
LOCAL_DRAIN_INTERVAL_SECONDS = 0.5


# An event, or one not made yet: (its request id, how to make it), made at the flush unless that request completed.
Pending = LifecycleEvent | tuple[str, Callable[[], LifecycleEvent]]


class UsageRecorder:
    def __init__(self) -> None:
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self.dropped = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-usage-flush")
        if redis_url() is None:
            # Embedded mode: no Celery worker; this process writes its own events to the ledger.
            self._drain_task = asyncio.create_task(self._drain_locally(), name="gateway-usage-drain")

    async def stop(self) -> None:
        for task in (self._task, self._drain_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._drain_task = None
        await self.flush()
        if redis_url() is None:
            await _drain_local_once()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def record_now(self, event: LifecycleEvent) -> None:
        """Write one event before going on; if the stream cannot take it, keep it for the background flush."""
        try:
            await publish_events([event])
        except Exception:
            log.warning("usage stream unavailable; keeping the %s event for retry", event.stage)
            self.record_later(event)

    def record_later(self, event: LifecycleEvent) -> None:
        self._add(event)

    def record_unless_completed(self, request_id: str, make: Callable[[], LifecycleEvent]) -> None:
        """A `forwarded` event, made only if the flush finds its request still in flight."""
        self._add((request_id, make))

    def _add(self, item: Pending) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1  # bounded memory; reconciliation closes such requests as unknown
            return
        self._pending.append(item)
        if len(self._pending) >= FLUSH_BATCH:
            self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:FLUSH_BATCH], self._pending[FLUSH_BATCH:]
            events = _without_superseded(batch)
            try:
                await publish_events(events)
            except Exception:
                self._pending[:0] = events
                raise

    async def _run(self) -> None:
        delay = FLUSH_INTERVAL_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            try:
                await self.flush()
                delay = FLUSH_INTERVAL_SECONDS
            except Exception:
                log.warning("usage stream unavailable; %d events waiting", len(self._pending))
                delay = min(max(delay * 2, 0.1), 2.0)

    async def _drain_locally(self) -> None:
        while True:
            await asyncio.sleep(LOCAL_DRAIN_INTERVAL_SECONDS)
            try:
                await _drain_local_once()
            except Exception:
                log.exception("writing usage events to the ledger failed; they stay queued")


def _without_superseded(batch: list[Pending]) -> list[LifecycleEvent]:
    """The batch's events, without the `forwarded` ones whose request completed in the same batch (the `completed`
    event carries the forward time and target); the unmade ones still in flight are made now."""
    completed = {
        event.request_id
        for event in batch
        if isinstance(event, LifecycleEvent) and event.stage == "completed" and event.forwarded_at_ms
    }
    kept: list[LifecycleEvent] = []
    for event in batch:
        if isinstance(event, LifecycleEvent):
            if event.stage != "forwarded" or event.request_id not in completed:
                kept.append(event)
        elif event[0] not in completed:
            kept.append(event[1]())
    return kept


async def _drain_local_once() -> None:
    from metering.services import usage_drain_local  # metering's writer; imported late to keep start-up light

    await sync_to_async(usage_drain_local, thread_sensitive=True)()
