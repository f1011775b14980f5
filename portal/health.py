"""Readiness: can this process serve traffic? Database, Redis (when configured) and the checks apps register, today
routing's "at least one healthy target per enabled pool" (routing/readiness.py). Liveness (`/healthz`) only says the
process answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
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


# Checks the apps add from their AppConfig.ready(), e.g. routing's "a healthy target in every pool": portal is the
# layer every app imports and imports none of them. They run only when the database answered, since they read it.
_database_checks: list[Callable[[], Check]] = []


def register_readiness_check(check: Callable[[], Check]) -> None:
    if check not in _database_checks:
        _database_checks.append(check)


def readiness() -> list[Check]:
    database = check_database()
    checks = [database, check_redis()]
    if database.ok:
        checks.extend(check() for check in _database_checks)
    return checks
