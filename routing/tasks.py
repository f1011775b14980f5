"""Celery tasks of the routing app: thin adapters over routing.services."""

from __future__ import annotations

from celery import shared_task

from routing.services import targets_probe


@shared_task(name="routing.tasks.probe_targets", ignore_result=True)
def probe_targets() -> dict[str, int]:
    """Active health (beat: settings.CELERY_BEAT_SCHEDULE): probe every enabled target and record the outcome."""
    results = targets_probe()
    healthy = sum(1 for result in results if result.healthy)
    return {"probed": len(results), "healthy": healthy, "unhealthy": len(results) - healthy}
