"""Celery tasks of metering: thin adapters over its services, started by beat (see docs/metering.md for the
schedule). Each returns a small summary for the worker log."""

from __future__ import annotations

import time
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from metering import conf
from metering.charges import ledger_record_usage_days
from metering.drain import usage_drain, usage_stream_consumers_prune
from metering.events import GROUP, STREAM
from metering.reconcile import usage_reconcile
from metering.retention import usage_events_prune


@shared_task(name="metering.tasks.drain_usage_stream", ignore_result=True)
def drain_usage_stream(stream: str = STREAM, group: str = GROUP) -> dict[str, int]:
    """Drain the usage stream into the ledger for up to METERING_DRAIN_BUDGET_SECONDS."""
    totals = usage_drain(
        max_batches=1_000_000, deadline=time.monotonic() + conf.drain_budget_seconds(), stream=stream, group=group
    )
    return totals.as_dict()


@shared_task(name="metering.tasks.reconcile_usage", ignore_result=True)
def reconcile_usage() -> dict[str, int]:
    """Close stale requests as unknown, correct counter drift and roll-ups, over the last METERING_RECONCILE_HOURS."""
    report = usage_reconcile(since=timezone.now() - timedelta(hours=conf.reconcile_hours()))
    return {
        "closed": len(report.closed),
        "inconsistent": report.inconsistent_count,
        "drift": len(report.drift),
        "rollups_repaired": report.rollups_repaired,
    }


@shared_task(name="metering.tasks.prune_usage_events", ignore_result=True)
def prune_usage_events() -> dict[str, int]:
    """Delete raw usage events past METERING_RETENTION_DAYS (roll-ups stay) and forget long-gone stream consumers."""
    return {"deleted": usage_events_prune(), "consumers_removed": usage_stream_consumers_prune()}


# Registered under its first name, from when billing held it: beat's schedule (portal/settings.py), queued messages
# and worker logs keep naming it so. It lives here because it reads usage, which billing does not.
@shared_task(name="billing.tasks.ledger_close_usage_periods", ignore_result=True)
def ledger_close_usage_periods(days: int = 3) -> dict[str, int]:
    """Charge each organization's usage of the last closed UTC days into the ledger. Recording is idempotent per
    period, so looking back `days` days catches up runs that were missed and a repeated run records nothing."""
    report = ledger_record_usage_days(days=days)
    return {"recorded": report.recorded, "already": report.already, "skipped": report.skipped}
