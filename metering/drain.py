"""Draining the usage stream into the ledger: read a batch with a consumer group, write it, acknowledge it.

Nothing is lost and nothing counted twice because:
- entries are acknowledged only after the batch's transaction committed; a crash before that leaves them pending,
- pending entries are read again: by the same consumer (its own history first), or, when their consumer died, taken
  over with XAUTOCLAIM once they were idle for METERING_CLAIM_IDLE_SECONDS,
- writing an entry twice changes nothing (metering/ingest.py is idempotent).
Entries that are not usage events (or that the ledger cannot hold) are copied to the dead-letter stream and
acknowledged in the same MULTI, so one bad entry never blocks the stream:
- a batch the database refuses for its data is halved until the refused events are alone, and those are
  dead-lettered (whatever Python or the database raised about them);
- any other failure (the database unreachable, a deadlock, a bug) leaves the batch pending to be read again, but an
  entry delivered METERING_MAX_DELIVERIES times is then written alone, and dead-lettered if even that fails while
  the database answers: one entry can hold back the others a bounded number of tries, never forever.
In embedded mode (no Redis) the same service drains the in-process queue of metering/stream.py.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from django.db import DatabaseError, DataError, IntegrityError, connection, transaction

from metering import conf
from metering.events import GROUP, STREAM, LifecycleEvent
from metering.ingest import IngestResult, Rejected, usage_events_write
from metering.stream import return_local_events, take_local_events
from portal.redis import sync_redis

log = logging.getLogger(__name__)

Entry = tuple[str, dict[bytes, bytes] | None]  # (entry id, fields; None when the entry was trimmed while pending)

# Without new entries, look for abandoned ones at most this often (XAUTOCLAIM scans the pending list).
_CLAIM_EVERY_S = 5.0


@dataclass
class DrainTotals:
    batches: int = 0
    entries: int = 0  # stream entries (or local events) handled and acknowledged
    written: int = 0  # ledger rows created or changed
    dead: int = 0  # entries sent to the dead-letter stream
    claimed: int = 0  # entries taken over from a dead consumer

    def add(self, other: DrainTotals) -> None:
        self.batches += other.batches
        self.entries += other.entries
        self.written += other.written
        self.dead += other.dead
        self.claimed += other.claimed

    def as_dict(self) -> dict[str, int]:
        return {
            "batches": self.batches,
            "entries": self.entries,
            "written": self.written,
            "dead": self.dead,
            "claimed": self.claimed,
        }


def consumer_name() -> str:
    """One consumer per process: a restarted worker is a new consumer, and its predecessor's entries are claimed."""
    return f"{socket.gethostname()}-{os.getpid()}"


def usage_drain(
    *,
    max_batches: int = 1000,
    deadline: float | None = None,
    block_ms: int = 0,
    batch_size: int | None = None,
    consumer: str | None = None,
    stream: str = STREAM,
    group: str = GROUP,
    dead_stream: str | None = None,
    claim_idle_ms: int | None = None,
) -> DrainTotals:
    """Drain until the stream is empty, `max_batches` batches were handled, or time.monotonic() passed `deadline`.

    `block_ms` > 0 waits that long for new entries before deciding the stream is empty. Must run outside any
    transaction: an acknowledgement inside an outer transaction would precede the commit it depends on."""
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("usage_drain must run outside a transaction (it acknowledges entries after committing)")
    size = batch_size or conf.batch_size()
    client = sync_redis()
    if client is None:
        return usage_drain_local(max_batches=max_batches, deadline=deadline, batch_size=size)
    drainer = StreamDrainer(
        client,
        stream=stream,
        group=group,
        consumer=consumer or consumer_name(),
        dead_stream=dead_stream or conf.dead_stream(),
        batch_size=size,
        claim_idle_ms=conf.claim_idle_ms() if claim_idle_ms is None else claim_idle_ms,
    )
    return drainer.run(max_batches=max_batches, deadline=deadline, block_ms=block_ms)


class StreamDrainer:
    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        dead_stream: str,
        batch_size: int,
        claim_idle_ms: int,
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dead_stream = dead_stream
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self._own_history = True  # entries delivered to this consumer earlier and not acknowledged: read them first
        self._claim_cursor = "0-0"
        self._next_claim = 0.0

    def run(self, *, max_batches: int, deadline: float | None, block_ms: int) -> DrainTotals:
        totals = DrainTotals()
        self.ensure_group()
        for _ in range(max_batches):
            if deadline is not None and time.monotonic() >= deadline:
                break
            entries, claimed, redelivered = self._next_entries(block_ms)
            if not entries:
                break
            batch = self.process(entries, deliveries=self._deliveries(entries) if redelivered else None)
            batch.claimed = claimed
            totals.add(batch)
        return totals

    def ensure_group(self) -> None:
        """Create the consumer group (and the stream) if missing. From id 0: entries the gateway wrote before
        metering ever ran (or after Redis lost the group) are read too."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _next_entries(self, block_ms: int) -> tuple[list[Entry], int, bool]:
        try:
            return self._read(block_ms)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            log.warning("usage stream %s lost its consumer group (Redis flushed?); creating it again", self.stream)
            self.ensure_group()
            self._own_history = True
            return self._read(block_ms)

    def _read(self, block_ms: int) -> tuple[list[Entry], int, bool]:
        """The next batch: (entries, how many were taken over, whether they were delivered before)."""
        if self._own_history:
            entries = self._read_group("0", block_ms=None)
            if entries:
                return entries, 0, True
            self._own_history = False
        now = time.monotonic()
        if now >= self._next_claim:
            claimed = self._claim()
            if claimed:
                return claimed, len(claimed), True
            self._next_claim = now + _CLAIM_EVERY_S
        return self._read_group(">", block_ms=block_ms or None), 0, False

    def _deliveries(self, entries: Sequence[Entry]) -> dict[str, int]:
        """How often each entry of a re-read batch was delivered (XPENDING counts every read of it, this one too)."""
        first, last = min(entries, key=_entry_order)[0], max(entries, key=_entry_order)[0]
        reply: Any = self.client.xpending_range(self.stream, self.group, min=first, max=last, count=len(entries) * 2)
        return {_text(item["message_id"]): int(item["times_delivered"]) for item in reply}

    def _read_group(self, start: str, *, block_ms: int | None) -> list[Entry]:
        reply: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.batch_size, block=block_ms
        )
        if not reply:
            return []
        _, entries = reply[0]
        return [(_text(entry_id), fields) for entry_id, fields in entries]

    def _claim(self) -> list[Entry]:
        """Take over entries other consumers left pending for longer than claim_idle_ms (they are presumed dead)."""
        reply: Any = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.batch_size,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = _text(cursor)
        # Redis 7 also returns the ids of pending entries that were trimmed from the stream; it drops them from the
        # pending list itself. They are lost events: say so loudly.
        if len(reply) > 2 and reply[2]:
            log.error("usage stream: %d pending entries were trimmed before they were written", len(reply[2]))
        claimed = [(_text(entry_id), fields) for entry_id, fields in entries]
        if claimed:
            log.warning("usage stream: took over %d entries from a consumer that stopped", len(claimed))
        return claimed

    def process(self, entries: Sequence[Entry], *, deliveries: dict[str, int] | None = None) -> DrainTotals:
        """Write one batch, then (only after the commit) dead-letter the bad entries and acknowledge all of them.

        `deliveries` (entry id -> times delivered) marks entries that failed before: those delivered
        METERING_MAX_DELIVERIES times or more are written one by one, apart from the rest."""
        parsed: list[tuple[str, LifecycleEvent, dict[bytes, bytes]]] = []
        suspects: list[tuple[str, LifecycleEvent, dict[bytes, bytes]]] = []
        dead: list[tuple[str, dict[bytes, bytes], str]] = []
        limit = conf.max_deliveries()
        for entry_id, fields in entries:
            if fields is None:
                log.error("usage stream entry %s was trimmed before it was written", entry_id)
                dead.append((entry_id, {}, "trimmed while pending"))
                continue
            try:
                event = LifecycleEvent.from_fields(fields)
            except ValueError as error:  # the parser's own refusal says what is wrong
                dead.append((entry_id, fields, str(error)[:300]))
                continue
            except Exception as error:  # anything else a hostile entry can make the parser raise
                dead.append((entry_id, fields, _reason(error)))
                continue
            delivered = (deliveries or {}).get(entry_id, 0)
            (suspects if delivered >= limit else parsed).append((entry_id, event, fields))
        result = _write_isolating([event for _, event, _ in parsed])
        for rejected in result.rejected:
            entry_id, _, fields = parsed[rejected.index]
            dead.append((entry_id, fields, rejected.reason))
        if suspects:
            alone = _write_each([event for _, event, _ in suspects])
            result.written += alone.written
            for rejected in alone.rejected:
                entry_id, _, fields = suspects[rejected.index]
                times = (deliveries or {}).get(entry_id, limit)
                dead.append((entry_id, fields, f"delivered {times} times, written alone: {rejected.reason}"))
        self._acknowledge([entry_id for entry_id, _ in entries], dead)
        return DrainTotals(batches=1, entries=len(entries), written=result.written, dead=len(dead))

    def _acknowledge(self, entry_ids: list[str], dead: list[tuple[str, dict[bytes, bytes], str]]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for entry_id, fields, reason in dead:
            log.error("usage stream entry %s dead-lettered to %s: %s", entry_id, self.dead_stream, reason)
            record: dict[Any, Any] = {**fields, "dead_reason": reason, "dead_entry": entry_id, "dead_from": self.stream}
            pipe.xadd(self.dead_stream, record, maxlen=conf.dead_stream_maxlen(), approximate=True)
        pipe.xack(self.stream, self.group, *entry_ids)
        pipe.execute()


# What a write raises about the data it was given, not about the database: the value is refused (a NUL byte, a number
# out of range, a broken constraint), by PostgreSQL through Django, by psycopg's COPY directly (which Django does not
# wrap), or by Python while adapting it.
_DATA_ERRORS: tuple[type[BaseException], ...] = (
    DataError,
    IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
    ValueError,
    TypeError,
    OverflowError,
)


def _write_isolating(events: list[LifecycleEvent]) -> IngestResult:
    """Write a batch; if the database refuses its data (not its availability), halve the batch until the events it
    refuses are alone, and reject those. Other failures propagate: nothing is acknowledged, and the entries' delivery
    count bounds how often that can happen to them (StreamDrainer.process)."""
    if not events:
        return IngestResult()
    try:
        return usage_events_write(events=events)
    except _DATA_ERRORS as error:
        if len(events) == 1:
            return IngestResult(rejected=[Rejected(0, f"refused by the database: {_reason(error)}")])
    middle = len(events) // 2
    first, second = _write_isolating(events[:middle]), _write_isolating(events[middle:])
    second.rejected = [Rejected(item.index + middle, item.reason) for item in second.rejected]
    return IngestResult(
        written=first.written + second.written,
        rollups=first.rollups + second.rollups,
        rejected=first.rejected + second.rejected,
    )


def _write_alone(event: LifecycleEvent) -> tuple[int, str | None]:
    """Write one event that failed before, whatever it raises: (rows written, why it was refused or None). Raises
    only when the database cannot be reached, so an outage never dead-letters good events."""
    try:
        result = usage_events_write(events=[event])
    except Exception as error:
        _raise_if_unavailable(error)
        return 0, _reason(error)
    return result.written, result.rejected[0].reason if result.rejected else None


def _write_each(events: list[LifecycleEvent]) -> IngestResult:
    result = IngestResult()
    for index, event in enumerate(events):
        written, reason = _write_alone(event)
        result.written += written
        if reason is not None:
            result.rejected.append(Rejected(index, reason))
    return result


def _raise_if_unavailable(error: Exception) -> None:
    """Re-raise `error` when the database does not answer a trivial query: then the failure was not the event's."""
    try:
        if connection.in_atomic_block:
            raise error
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        raise error from None


def _reason(error: BaseException) -> str:
    """A dead letter's reason: the exception's type and the first line of its text, bounded."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


def _entry_order(entry: Entry) -> tuple[int, int]:
    milliseconds, _, sequence = entry[0].partition("-")
    return int(milliseconds), int(sequence or 0)


def usage_drain_local(
    *, max_batches: int = 1_000_000, deadline: float | None = None, batch_size: int | None = None
) -> DrainTotals:
    """Embedded mode: write the events waiting in this process's queue (metering/stream.py) to the ledger. Events
    of a batch that fails go back to the front of the queue."""
    batch_size = batch_size or conf.batch_size()
    totals = DrainTotals()
    for _ in range(max_batches):
        if deadline is not None and time.monotonic() >= deadline:
            break
        events = take_local_events(batch_size)
        if not events:
            break
        try:
            result = _write_isolating(events)
        except BaseException:
            # Nothing was written: keep them for the next attempt. (SQLite's "database is locked" is the usual
            # cause here, and it passes; events the database refuses for their data were already set aside.)
            return_local_events(events)
            raise
        for rejected in result.rejected:
            log.error("usage event dropped (%s): %r", rejected.reason, events[rejected.index])
        totals.add(DrainTotals(batches=1, entries=len(events), written=result.written, dead=len(result.rejected)))
    return totals


def usage_stream_consumers_prune(*, stream: str = STREAM, group: str = GROUP, idle_ms: int = 86_400_000) -> int:
    """Forget consumers (restarted worker processes) that hold nothing and were idle for a day."""
    client = sync_redis()
    if client is None:
        return 0
    try:
        consumers = client.xinfo_consumers(stream, group)
    except redis.ResponseError:
        return 0  # no stream or group yet
    removed = 0
    for consumer in consumers:
        name = _text(consumer["name"])
        if consumer["pending"] == 0 and consumer["idle"] >= idle_ms:
            client.xgroup_delconsumer(stream, group, name)
            removed += 1
    return removed


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
