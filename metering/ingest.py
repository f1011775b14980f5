"""Ingestion: lifecycle events into ledger rows and roll-ups, in one transaction per batch.

Per batch: events that cannot be stored are set aside (the caller dead-letters them); each request's events are
merged into a new row by the rules in metering/ledger.py and inserted with INSERT ... ON CONFLICT DO NOTHING (the
common case ends here); the request ids the ledger already held are then locked (SELECT ... FOR UPDATE), merged
with their events and written back; the roll-ups receive every row's delta in the same transaction. Inserting and
locking in request-id order means two consumers that meet the same request id (a re-claimed entry) serialize on it
instead of overwriting each other, and never deadlock.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Organization, User
from apikeys.models import ApiKey
from apikeys.services import apikey_touch_last_used
from metering import conf
from metering.counters import allowance_refund_rows
from metering.events import LifecycleEvent
from metering.ledger import (
    LedgerRow,
    ms_to_datetime,
    row_admitted_late,
    row_apply_events,
    row_contribution,
    row_from_events,
    row_snapshot,
)
from metering.rollups import RollupDeltas, rollup_deltas_apply, rollup_lock
from metering.store import rows_insert_new, rows_lock, rows_update

log = logging.getLogger(__name__)

_INT32 = 2**31 - 1
_MAX_AT_MS = 32_503_680_000_000  # year 3000: anything later is a unit mistake (microseconds, not milliseconds)
_LENGTHS = {
    "request_id": 64,
    "model": 80,
    "served_model": 80,
    "family": 40,
    "plan": 40,
    "allowance_class": 20,
    "error_code": 40,
}
_INT32_FIELDS = ("cost_units", "latency_ms", "prompt_tokens", "completion_tokens")

# Per process: the newest last_used_at (ms) this process wrote for each key, once its transaction committed.
_touched: dict[int, int] = {}
_TOUCHED_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int  # position in the batch given to usage_events_write
    reason: str


@dataclass
class IngestResult:
    written: int = 0  # ledger rows created or changed
    rollups: int = 0  # roll-up rows touched
    rejected: list[Rejected] = field(default_factory=list)


def event_problem(event: LifecycleEvent) -> str | None:
    """Why an event cannot go into the ledger, or None. Checked before the transaction, so one bad event is
    dead-lettered alone instead of failing its whole batch."""
    if not event.request_id:
        return "empty request_id"
    for name, limit in _LENGTHS.items():
        value = getattr(event, name)
        if len(value) > limit:
            return f"{name} longer than {limit} characters"
        if "\x00" in value:
            return f"{name} holds a NUL character, which PostgreSQL cannot store"
    if not 0 < event.at_ms < _MAX_AT_MS:
        return "at_ms out of range"
    if event.admitted_at_ms is not None and not 0 < event.admitted_at_ms < _MAX_AT_MS:
        return "admitted_at_ms out of range"
    if event.organization_id <= 0:
        return "organization_id must be positive"
    for name in _INT32_FIELDS:
        value = getattr(event, name)
        if value is not None and not 0 <= value <= _INT32:
            return f"{name} out of range"
    if event.status_code is not None and not 100 <= event.status_code <= 599:
        return "status_code out of range"
    return None


def usage_events_ingest(*, events: Sequence[LifecycleEvent]) -> int:
    """Write a batch of lifecycle events to the ledger; returns how many ledger rows were created or changed.

    Idempotent and order-independent. Events that cannot be stored are logged and dropped; the stream drainer uses
    usage_events_write instead, to dead-letter them."""
    result = usage_events_write(events=events)
    for rejected in result.rejected:
        log.error("usage event dropped (%s): %r", rejected.reason, events[rejected.index])
    return result.written


def usage_events_write(*, events: Sequence[LifecycleEvent], now: datetime | None = None) -> IngestResult:
    now = now or timezone.now()
    result = IngestResult()
    valid: list[tuple[int, LifecycleEvent]] = []
    for index, event in enumerate(events):
        problem = event_problem(event)
        if problem:
            result.rejected.append(Rejected(index, problem))
        else:
            valid.append((index, event))
    if not valid:
        return result

    with transaction.atomic(), rollup_lock(exclusive=False):
        org_ids = {event.organization_id for _, event in valid}
        known_orgs = set(Organization.objects.filter(pk__in=org_ids).values_list("pk", flat=True))
        groups: dict[str, list[LifecycleEvent]] = defaultdict(list)
        for index, event in valid:
            if event.organization_id in known_orgs:
                groups[event.request_id].append(event)
            else:
                result.rejected.append(Rejected(index, f"unknown organization {event.organization_id}"))
        if groups:
            result.written, result.rollups = _write(groups, now)
            _touch_keys(groups)
    result.rejected.sort(key=lambda rejected: rejected.index)
    return result


def _write(groups: dict[str, list[LifecycleEvent]], now: datetime) -> tuple[int, int]:
    """Insert the requests the ledger has not seen (the common case: one statement), then lock, merge and write
    back the ones it has. Returns (rows written, roll-up rows touched)."""
    users, keys = _known_people(groups)
    deltas = RollupDeltas()
    fresh = []
    for request_id in sorted(groups):
        row = row_from_events(groups[request_id])
        _link(row, users, keys)
        row.recorded_at = now
        fresh.append(row)
    inserted = rows_insert_new(fresh)
    owed: list[LedgerRow] = []  # refunded units still in the counters (admitted late, or a refund that failed)
    for row in fresh:
        if row.request_id in inserted:
            deltas.add(row_contribution(row), +1)
            if row_admitted_late(row) or _refund_owed(row, groups[row.request_id], was_refunded=False):
                owed.append(row)

    changed: list[LedgerRow] = []
    for row in rows_lock([row.request_id for row in fresh if row.request_id not in inserted]):
        group = groups[row.request_id]
        if any(event.organization_id != row.organization_id for event in group):
            log.error("usage events for %s name another organization than its row; kept %s", row, row.organization_id)
        before, contribution, was_refunded = row_snapshot(row), row_contribution(row), row.refunded
        row_apply_events(row, group)
        if (row_admitted_late(row) and not was_refunded) or _refund_owed(row, group, was_refunded=was_refunded):
            owed.append(row)
        _link(row, users, keys)
        if row_snapshot(row) == before:
            continue  # a replay: nothing new
        if row.recorded_at is None:
            row.recorded_at = now
        changed.append(row)
        deltas.move(contribution, row_contribution(row))
    rows_update(changed)
    if owed:
        # After the commit that marks them refunded: a replay finds them marked and gives nothing back twice.
        transaction.on_commit(functools.partial(allowance_refund_rows, owed))
    return len(inserted) + len(changed), rollup_deltas_apply(deltas=deltas)


def _refund_owed(row: LedgerRow, group: list[LifecycleEvent], *, was_refunded: bool) -> bool:
    """The gateway could not give this request's units back (Redis unreachable at that moment) and this batch is
    the first to record the refund: the units go back now, once."""
    return row.refunded and not was_refunded and row.cost_units > 0 and any(event.refund_owed for event in group)


def _link(row: LedgerRow, users: set[int], keys: dict[int, int]) -> None:
    """Point the row at the user and key it names, if they exist (the key only within the row's organization)."""
    if row.user_id is not None and row.user_id not in users:
        row.user_id = None  # deleted (or never existed): the row stays attributable to its organization
    if row.api_key_id is None and keys.get(row.reported_key_id) == row.organization_id:
        row.api_key_id = row.reported_key_id


def _known_people(groups: dict[str, list[LifecycleEvent]]) -> tuple[set[int], dict[int, int]]:
    """The users that exist, and the keys that exist with their organization, among those the events name."""
    user_ids = {event.user_id for group in groups.values() for event in group if event.user_id}
    key_ids = {event.key_id for group in groups.values() for event in group if event.key_id}
    users = set(User.objects.filter(pk__in=user_ids).values_list("pk", flat=True)) if user_ids else set()
    keys = dict(ApiKey.objects.filter(pk__in=key_ids).values_list("pk", "organization_id")) if key_ids else {}
    return users, keys


def _touch_keys(groups: dict[str, list[LifecycleEvent]]) -> None:
    """Move the keys' last_used_at forward. A key this process wrote less than METERING_LAST_USED_RESOLUTION_SECONDS
    ago is skipped: "last used" is shown to the minute, and one UPDATE per key per batch would cost more than the
    batch itself once a batch spans hundreds of keys."""
    resolution_ms = conf.last_used_resolution_ms()
    newest: dict[int, int] = {}
    for group in groups.values():
        for event in group:
            if event.key_id and event.at_ms > newest.get(event.key_id, 0):
                newest[event.key_id] = event.at_ms
    due = {key_id: at for key_id, at in newest.items() if _touched.get(key_id, 0) < at - resolution_ms}
    if not due:
        return
    # Sorted by key id: concurrent batches lock key rows in the same order.
    apikey_touch_last_used(last_used={key_id: ms_to_datetime(at) for key_id, at in sorted(due.items())})
    transaction.on_commit(lambda: _remember_touched(due))


def _remember_touched(due: dict[int, int]) -> None:
    if len(_touched) > _TOUCHED_MAX:
        _touched.clear()
    for key_id, at in due.items():
        _touched[key_id] = max(at, _touched.get(key_id, 0))
