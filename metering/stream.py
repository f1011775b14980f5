"""Where lifecycle events go: the Redis stream `usage:events`, or, in embedded mode, an in-process queue.

The gateway calls `publish_events` (async); metering drains the stream with a consumer group (or the local queue)
and writes the ledger. Entries stay in the stream until metering acknowledges them after its commit.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Sequence

from billing.admission import Journal
from metering.events import STREAM, LifecycleEvent
from portal.redis import hot_redis, sync_redis

# An upper bound so a metering outage cannot grow Redis without limit; far above a day of traffic at benchmark
# rates. Trimming is approximate (~) so XADD stays O(1).
STREAM_MAXLEN = 50_000_000
_MAXLEN = str(STREAM_MAXLEN)

_local_lock = threading.Lock()
_local_queue: collections.deque[LifecycleEvent] = collections.deque()


async def publish_events(events: Sequence[LifecycleEvent]) -> None:
    """Append events to the usage stream in one round trip (a pipeline). Raises if Redis cannot take them."""
    if not events:
        return
    client = hot_redis()
    if client is None:
        with _local_lock:
            _local_queue.extend(events)
        return
    if len(events) == 1:
        await client.execute(*_xadd(events[0]))
        return
    await client.execute_many([_xadd(event) for event in events])


def _xadd(event: LifecycleEvent) -> tuple[str, ...]:
    return ("XADD", STREAM, "MAXLEN", "~", _MAXLEN, "*", "e", event.to_fields()["e"])


def journal_for(event: LifecycleEvent) -> Journal:
    """The same stream entry as `publish_events` writes, for the admission engine to append atomically."""
    return Journal(stream=STREAM, field="e", value=event.to_fields()["e"], maxlen=STREAM_MAXLEN)


def publish_events_sync(events: Iterable[LifecycleEvent]) -> None:
    events = list(events)
    if not events:
        return
    client = sync_redis()
    if client is None:
        with _local_lock:
            _local_queue.extend(events)
        return
    with client.pipeline(transaction=False) as pipe:
        for event in events:
            pipe.xadd(STREAM, event.to_fields(), maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.execute()


def take_local_events(limit: int = 1000) -> list[LifecycleEvent]:
    """Embedded mode: remove and return up to `limit` queued events (metering writes them)."""
    with _local_lock:
        batch: list[LifecycleEvent] = []
        while _local_queue and len(batch) < limit:
            batch.append(_local_queue.popleft())
        return batch


def return_local_events(events: Sequence[LifecycleEvent]) -> None:
    """Embedded mode: put events back at the front after a failed write, so none is lost."""
    with _local_lock:
        _local_queue.extendleft(reversed(events))
