"""Hourly and daily roll-ups of the ledger, kept exact by applying each row's change as a delta in the same
transaction that changes the row, and checked (and repaired) against the raw rows by reconciliation.

A delta is the row's contribution after the change minus its contribution before, so a replayed event (no change)
adds nothing and a request that moves between buckets (an early `accepted` arriving late) moves its count with it.
Buckets are UTC hours and UTC days.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour

from metering.events import OUTCOMES
from metering.ledger import Contribution
from metering.models import ROLLUP_COUNTERS, Granularity, UsageEvent, UsageRollup
from metering.store import bulk_insert

RollupKey = tuple[str, datetime, int, int, str]  # granularity, bucket start, organization, key id, model
Counters = list[int]

_GRANULARITIES = (Granularity.HOUR, Granularity.DAY)
_KEY_COLUMNS = ("granularity", "bucket_start", "organization_id", "key_id", "model")
# PostgreSQL advisory lock id shared by ingestion (shared mode) and the roll-up repair (exclusive mode), so a repair
# compares rows and roll-ups that no batch is changing at the same moment.
_ROLLUP_LOCK = 0x6D657465  # "mete"


def bucket_start(at: datetime, granularity: str) -> datetime:
    at = at.astimezone(UTC)
    if granularity == Granularity.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def bucket_width(granularity: str) -> timedelta:
    return timedelta(days=1) if granularity == Granularity.DAY else timedelta(hours=1)


class RollupDeltas:
    """Changes to roll-up counters, accumulated over a batch and written in one statement."""

    def __init__(self) -> None:
        self.changes: dict[RollupKey, Counters] = {}

    def add(self, contribution: Contribution | None, sign: int) -> None:
        if contribution is None:
            return
        values = _counters(contribution)
        for granularity in _GRANULARITIES:
            key = (
                str(granularity),
                bucket_start(contribution.at, granularity),
                contribution.organization_id,
                contribution.key_id,
                contribution.model,
            )
            current = self.changes.setdefault(key, [0] * len(ROLLUP_COUNTERS))
            for index, value in enumerate(values):
                current[index] += sign * value

    def move(self, before: Contribution | None, after: Contribution | None) -> None:
        self.add(before, -1)
        self.add(after, +1)

    def nonzero(self) -> list[tuple[RollupKey, Counters]]:
        return sorted((key, values) for key, values in self.changes.items() if any(values))


def _counters(contribution: Contribution) -> Counters:
    values = [
        1,
        1 if contribution.billed else 0,
        contribution.cost_units,
        contribution.prompt_tokens,
        contribution.completion_tokens,
    ]
    values += [1 if contribution.outcome == outcome else 0 for outcome in OUTCOMES]
    return values


def rollup_deltas_apply(*, deltas: RollupDeltas) -> int:
    """Add the deltas to the roll-up rows (creating missing ones) with INSERT ... ON CONFLICT DO UPDATE, in key order
    so concurrent batches lock roll-up rows in the same order. Returns the number of roll-up rows touched."""
    rows = deltas.nonzero()
    quote = connection.ops.quote_name
    table = quote(UsageRollup._meta.db_table)
    updates = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in ROLLUP_COUNTERS)
    bulk_insert(
        UsageRollup,
        (*_KEY_COLUMNS, *ROLLUP_COUNTERS),
        [(*key, *values) for key, values in rows],
        f"ON CONFLICT ({', '.join(quote(name) for name in _KEY_COLUMNS)}) DO UPDATE SET {updates}",
    )
    return len(rows)


@contextmanager
def rollup_lock(*, exclusive: bool) -> Iterator[None]:
    """Inside a transaction: hold the roll-up lock until it ends (PostgreSQL; SQLite serializes writers anyway)."""
    if connection.vendor == "postgresql":
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s)", [_ROLLUP_LOCK])
    yield


def rollups_computed(*, granularity: str, since: datetime, until: datetime) -> dict[RollupKey, Counters]:
    """The roll-ups of [since, until) as the raw rows say they should be."""
    trunc: type[TruncDay | TruncHour] = TruncDay if granularity == Granularity.DAY else TruncHour
    billed = Q(billed=True)
    aggregates = {
        "requests": Count("id"),
        "billed_requests": Count("id", filter=billed),
        "cost_units": Coalesce(Sum("cost_units", filter=billed), Value(0)),
        "prompt_tokens": Coalesce(Sum("prompt_tokens"), Value(0)),
        "completion_tokens": Coalesce(Sum("completion_tokens"), Value(0)),
        **{f"outcome_{outcome}": Count("id", filter=Q(outcome=outcome)) for outcome in OUTCOMES},
    }
    rows = (
        UsageEvent.objects.filter(started_at__gte=since, started_at__lt=until)
        .exclude(stage="")
        .annotate(bucket=trunc("started_at", tzinfo=UTC), key=F("reported_key_id"))
        .values("bucket", "organization_id", "key", "model")
        .annotate(**aggregates)
        .order_by()
    )
    computed: dict[RollupKey, Counters] = {}
    for found in rows:
        row: dict[str, Any] = dict(found)
        key = (granularity, row["bucket"], row["organization_id"], row["key"], row["model"])
        computed[key] = [int(row[name]) for name in ROLLUP_COUNTERS]
    return computed


def rollups_stored(*, granularity: str, since: datetime, until: datetime) -> dict[RollupKey, Counters]:
    rows = UsageRollup.objects.filter(
        granularity=granularity, bucket_start__gte=since, bucket_start__lt=until
    ).values_list("bucket_start", "organization_id", "key_id", "model", *ROLLUP_COUNTERS)
    return {(granularity, row[0], row[1], row[2], row[3]): list(row[4:]) for row in rows}


def usage_rollups_repair(*, since: datetime, until: datetime) -> list[RollupKey]:
    """Check the roll-ups of whole buckets in [since, until) against the raw rows and correct any that differ.

    Only buckets whose raw rows still exist may be checked: the caller keeps `since` after the retention cutoff.
    Returns the keys of the roll-ups that were wrong (empty when all were exact)."""
    wrong: list[RollupKey] = []
    with transaction.atomic(), rollup_lock(exclusive=True):
        deltas = RollupDeltas()
        for granularity in _GRANULARITIES:
            start = _ceil(since, granularity)
            end = bucket_start(until, granularity)
            if start >= end:
                continue
            computed = rollups_computed(granularity=granularity, since=start, until=end)
            stored = rollups_stored(granularity=granularity, since=start, until=end)
            for key in sorted(set(computed) | set(stored)):
                want = computed.get(key, [0] * len(ROLLUP_COUNTERS))
                have = stored.get(key, [0] * len(ROLLUP_COUNTERS))
                if want != have:
                    wrong.append(key)
                    deltas.changes[key] = [a - b for a, b in zip(want, have, strict=True)]
        rollup_deltas_apply(deltas=deltas)
    return wrong


def _ceil(at: datetime, granularity: str) -> datetime:
    start = bucket_start(at, granularity)
    return start if start == at.astimezone(UTC) else start + bucket_width(granularity)
