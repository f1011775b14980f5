"""Routing's part of readiness (/readyz): every enabled pool with a model alias has a target that can serve.
Registered with portal/health.py by RoutingConfig.ready()."""

from __future__ import annotations

import logging

from portal.health import Check
from routing.selectors import pools_without_healthy_target

log = logging.getLogger(__name__)


def check_pools() -> Check:
    """Every enabled pool with a model alias has at least one enabled target whose last probe did not fail."""
    try:
        missing = pools_without_healthy_target()
    except Exception as error:
        log.warning("readiness: routing check failed: %s", type(error).__name__)
        return Check("pools", False, "unknown")
    if missing:
        return Check("pools", False, "no healthy target in: " + ", ".join(missing))
    return Check("pools", True)
