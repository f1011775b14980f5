"""Reconciliation: close requests that never completed, say what the ledger knows about a period, list the requests
whose lifecycle does not add up, and bring the fast admission counters and the roll-ups back in line with the ledger.

Refund policy for requests closed as `unknown` (METERING_REFUND_UNKNOWN, default off): they stay counted. Such a
request was admitted and most likely reached a backend (the common cause is a gateway worker that died mid-stream),
so it may have been served; the units it holds leave the window on their own, and giving them back could credit a
request the backend did serve. With the setting on, the units are refunded and the row is marked refunded.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from billing.selectors import NoDefaultPlan
from metering import conf
from metering.counters import CounterCheck, allowance_check, allowance_refund_rows, organizations_with_bookings
from metering.drain import DrainTotals, usage_drain
from metering.ledger import LedgerRow, datetime_to_ms, row_close_unknown, row_contribution
from metering.models import Outcome, Stage, UsageEvent
from metering.rollups import RollupDeltas, rollup_deltas_apply, rollup_lock, usage_rollups_repair
from metering.store import rows_lock, rows_update

log = logging.getLogger(__name__)

_CLOSE_BATCH = 1000
_CLOSE_BATCHES = 100  # at most 100,000 closed per run; the next run continues
LISTED = 200  # inconsistent request ids listed in a report (all are counted)

_OPEN = (Stage.ACCEPTED, Stage.FORWARDED)


@dataclass
class ReconcileReport:
    since: datetime
    until: datetime
    drained: DrainTotals | None = None
    closed: list[str] = field(default_factory=list)  # request ids closed as unknown by this run
    seen: int = 0  # ledger rows of requests that arrived in the period (refused ones included)
    refused: int = 0
    accepted: int = 0
    forwarded: int = 0
    completed: int = 0
    closed_unknown: int = 0  # closed as unknown, by this run or an earlier one
    recorded: int = 0  # admitted requests whose usage is settled in the ledger (completed or closed)
    in_flight: int = 0  # admitted, not yet completed or closed
    inconsistent: list[tuple[str, str]] = field(default_factory=list)  # (request id, what does not add up)
    inconsistent_count: int = 0
    drift: list[CounterCheck] = field(default_factory=list)
    rollups_repaired: int = 0

    def lines(self) -> list[str]:
        out = [
            f"period {self.since.isoformat()} .. {self.until.isoformat()}",
        ]
        if self.drained is not None:
            out.append(f"drained first: {self.drained.entries} entries, {self.drained.written} rows written")
        out += [
            f"requests seen {self.seen}: refused {self.refused}, accepted {self.accepted}, "
            f"forwarded {self.forwarded}, completed {self.completed}, recorded {self.recorded}, "
            f"closed as unknown {self.closed_unknown} ({len(self.closed)} by this run), in flight {self.in_flight}",
            f"inconsistent requests: {self.inconsistent_count}",
        ]
        out += [f"  {request_id}  {problem}" for request_id, problem in self.inconsistent]
        if self.inconsistent_count > len(self.inconsistent):
            out.append(f"  ... and {self.inconsistent_count - len(self.inconsistent)} more")
        out.append(f"counter drift: {len(self.drift)}")
        out += [
            f"  org {check.organization_id} {check.limit} ({check.key}): counter {check.counter_used}, "
            f"ledger {check.ledger_used}{', corrected' if check.corrected else ''}"
            for check in self.drift
        ]
        out.append(f"roll-ups repaired: {self.rollups_repaired}")
        return out


def usage_reconcile(
    *,
    since: datetime,
    until: datetime | None = None,
    drain_first: bool = True,
    correct: bool = True,
    now: datetime | None = None,
) -> ReconcileReport:
    """The whole reconciliation for requests that arrived in [since, until); see the module docstring."""
    now = now or timezone.now()
    until = until or now
    report = ReconcileReport(since=since, until=until)
    if drain_first:
        report.drained = usage_drain(max_batches=10_000, deadline=None)
    report.closed = usage_requests_close_stale(now=now)
    _count(report)
    _list_inconsistent(report)
    now_ms = datetime_to_ms(now)
    for organization_id in organizations_with_bookings(now_ms=now_ms):
        try:
            report.drift += allowance_check(organization_id=organization_id, correct=correct, now_ms=now_ms)
        except NoDefaultPlan:
            log.error("organization %s has no plan: its counters cannot be checked", organization_id)
    for check in report.drift:
        log.warning("admission counter drift: %s", check)
    retention_cutoff = now - timedelta(days=conf.retention_days())
    if correct:
        report.rollups_repaired = len(usage_rollups_repair(since=max(since, retention_cutoff), until=min(until, now)))
    return report


def usage_requests_close_stale(*, now: datetime | None = None) -> list[str]:
    """Close admitted requests that saw no completion within the gateway's total timeout (plus a margin) as
    `unknown`. Returns their request ids. Rows a concurrent batch is writing are skipped until the next run."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=conf.stale_after_seconds())
    refund = conf.refund_unknown()
    closed: list[str] = []
    for _ in range(_CLOSE_BATCHES):
        with transaction.atomic(), rollup_lock(exclusive=False):
            stale = UsageEvent.objects.filter(stage__in=_OPEN, started_at__lt=cutoff).order_by("request_id")
            ids = list(stale.values_list("request_id", flat=True)[:_CLOSE_BATCH])
            if not ids:
                break
            # Rows a batch is writing right now are skipped; a completion may be arriving in that very batch.
            rows = [row for row in rows_lock(ids, skip_locked=True) if row.stage in _OPEN]
            deltas = RollupDeltas()
            refunds: list[LedgerRow] = []
            for row in rows:
                before = row_contribution(row)
                owes_refund = refund and row.billed and row.cost_units > 0 and row.admitted_at_ms is not None
                row_close_unknown(row, now=now, refunded=owes_refund)
                deltas.move(before, row_contribution(row))
                if owes_refund:
                    refunds.append(row)
            rows_update(rows)
            rollup_deltas_apply(deltas=deltas)
            if refunds:
                transaction.on_commit(functools.partial(allowance_refund_rows, refunds))
        closed += [row.request_id for row in rows]
        if len(ids) < _CLOSE_BATCH:
            break
    if closed:
        log.warning("closed %d requests that never completed as unknown", len(closed))
    return closed


def _count(report: ReconcileReport) -> None:
    admitted = ~Q(stage=Stage.REFUSED)
    totals = UsageEvent.objects.filter(started_at__gte=report.since, started_at__lt=report.until).aggregate(
        seen=Count("id"),
        refused=Count("id", filter=Q(stage=Stage.REFUSED)),
        accepted=Count("id", filter=admitted),
        forwarded=Count("id", filter=Q(forwarded_at__isnull=False)),
        completed=Count("id", filter=Q(completed_at__isnull=False)),
        closed_unknown=Count("id", filter=Q(stage=Stage.CLOSED)),
        in_flight=Count("id", filter=Q(stage__in=_OPEN)),
    )
    for name, value in totals.items():
        setattr(report, name, value)
    report.recorded = report.accepted - report.in_flight


# What does not add up in a request's lifecycle: the database condition, the same test on a loaded row, and why.
_PROBLEMS: tuple[tuple[Q, Callable[[UsageEvent], bool], str], ...] = (
    (Q(stage=Stage.CLOSED), lambda row: row.stage == Stage.CLOSED, "closed as unknown: no completion arrived"),
    (
        Q(accepted_at__isnull=True) & ~Q(stage=Stage.REFUSED),
        lambda row: row.accepted_at is None and row.stage != Stage.REFUSED,
        "no accepted event, yet later stages arrived",
    ),
    (
        Q(outcome=Outcome.OK, forwarded_at__isnull=True),
        lambda row: row.outcome == Outcome.OK and row.forwarded_at is None,
        "completed ok but never reported as forwarded",
    ),
    (
        Q(outcome=Outcome.OK, refunded=True),
        lambda row: row.outcome == Outcome.OK and row.refunded,
        "completed ok yet refunded",
    ),
)


def _list_inconsistent(report: ReconcileReport) -> None:
    condition = Q()
    for problem, _, _ in _PROBLEMS:
        condition |= problem
    suspects = UsageEvent.objects.filter(started_at__gte=report.since, started_at__lt=report.until).filter(condition)
    report.inconsistent_count = suspects.count()
    for row in suspects.order_by("started_at", "request_id")[:LISTED]:
        reasons = [text for _, test, text in _PROBLEMS if test(row)]
        report.inconsistent.append((row.request_id, "; ".join(reasons)))
