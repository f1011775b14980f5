"""Celery tasks of billing: thin adapters over its services, started by beat. Each returns a small summary for the
worker log."""

from __future__ import annotations

from celery import shared_task

from billing.ledger import ledger_record_usage_days


@shared_task(name="billing.tasks.ledger_close_usage_periods", ignore_result=True)
def ledger_close_usage_periods(days: int = 3) -> dict[str, int]:
    """Charge each organization's usage of the last closed UTC days into the ledger. Recording is idempotent per
    period, so looking back `days` days catches up runs that were missed and a repeated run records nothing."""
    report = ledger_record_usage_days(days=days)
    return {"recorded": report.recorded, "already": report.already, "skipped": report.skipped}
