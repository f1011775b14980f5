"""Retention: raw usage events are kept for METERING_RETENTION_DAYS; roll-ups are kept for good.

Deleting in bounded batches by primary key keeps each transaction short, so pruning never holds locks that the
ingestion of new events would wait on.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from metering import conf
from metering.models import UsageEvent

_BATCH = 5000
_MAX_BATCHES = 2000  # 10 million rows per run at most; the next run continues


def usage_events_prune(*, now: datetime | None = None, days: int | None = None) -> int:
    """Delete raw usage events that arrived more than `days` (default: the setting) ago. Returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=conf.retention_days() if days is None else days)
    deleted = 0
    for _ in range(_MAX_BATCHES):
        old = UsageEvent.objects.filter(started_at__lt=cutoff).order_by("started_at")
        ids = list(old.values_list("pk", flat=True)[:_BATCH])
        if not ids:
            break
        with transaction.atomic():
            deleted += UsageEvent.objects.filter(pk__in=ids).delete()[0]
    return deleted
