"""Reads about the routing catalog for pages and checks (the gateway reads routing/table.py instead)."""

from __future__ import annotations

from django.db.models import Count, Q

from routing.models import HealthStatus, ModelAlias, RouterPool


def pools_without_healthy_target() -> list[str]:
    """Slugs of enabled pools serving an enabled alias that have no enabled, non-draining target whose last probe
    did not fail (a target not probed yet counts as usable)."""
    usable = Q(targets__enabled=True, targets__draining=False) & ~Q(targets__health_status=HealthStatus.UNHEALTHY)
    pools = (
        RouterPool.objects.filter(enabled=True, aliases__enabled=True)
        .annotate(usable=Count("targets", filter=usable, distinct=True))
        .filter(usable=0)
        .order_by("slug")
        .distinct()
    )
    return [pool.slug for pool in pools]


def model_aliases_listed() -> list[ModelAlias]:
    """Enabled aliases for the portal's model list, with their pool."""
    return list(ModelAlias.objects.filter(enabled=True).select_related("pool").order_by("alias"))
