"""Readiness: can this process serve traffic? Database, Redis (when configured) and at least one healthy target
per enabled pool. Liveness (`/healthz`) only says the process answers."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection

from portal.redis import sync_redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Check("database", True)
    except Exception as error:
        log.warning("readiness: database unreachable: %s", type(error).__name__)
        return Check("database", False, "unreachable")


def check_redis() -> Check:
    client = sync_redis()
    if client is None:
        return Check("redis", True, "embedded mode")
    try:
        client.ping()
        return Check("redis", True)
    except Exception as error:
        log.warning("readiness: Redis unreachable: %s", type(error).__name__)
        return Check("redis", False, "unreachable")


def check_pools() -> Check:
    """Every enabled pool with a model alias has at least one enabled target whose last probe did not fail."""
    from routing.selectors import pools_without_healthy_target

    try:
        missing = pools_without_healthy_target()
    except Exception as error:
        log.warning("readiness: routing check failed: %s", type(error).__name__)
        return Check("pools", False, "unknown")
    if missing:
        return Check("pools", False, "no healthy target in: " + ", ".join(missing))
    return Check("pools", True)


def readiness() -> list[Check]:
    database = check_database()
    checks = [database, check_redis()]
    if database.ok:
        checks.append(check_pools())
    return checks
