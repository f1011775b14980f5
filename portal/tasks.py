"""Celery tasks of the shared layer: thin adapters, started by beat (portal/settings.py CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from portal.outbox import outbox_deliver


@shared_task(name="portal.tasks.deliver_invalidations", ignore_result=True)
def deliver_invalidations() -> dict[str, int]:
    """Deliver the invalidations that could not be published when their change committed (Redis was away)."""
    return {"delivered": outbox_deliver()}
