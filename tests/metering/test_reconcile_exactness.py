"""Reconciliation running in a loop while an organization fills its allowance from several threads: exactly the
limit is admitted. The ledger is always behind the counters (requests admitted since it was drained are in the
counters only); a correction that lowered a counter to the ledger let such an organization past its limit."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts.models import Organization, User
from billing.admission import get_engine
from billing.allowances import request_limits, scope_for
from billing.selectors import plan_snapshot_for_organization
from metering.events import LifecycleEvent
from metering.models import UsageEvent
from metering.reconcile import usage_reconcile
from metering.stream import journal_for
from portal.redis import aclose_clients
from portal.request_ids import new_request_id
from tests.factories import DefaultPlanFactory, issue_key, verified
from tests.metering.events import now_ms

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL"),
]

LIMIT = 400
THREADS = 4
ATTEMPTS_PER_THREAD = 150  # 600 in all: 200 more than the limit
PACE_S = 0.01  # a request every 10 ms per thread: the fill takes about a second, with reconciliations in between
TIME_LIMIT_S = 60.0


def fill(organization_id: int, key_id: int, results: list[int], start: threading.Barrier) -> None:
    """One gateway worker: admit with the accepted event journaled in the same call, as gateway/completions.py."""
    limits = request_limits(plan=plan_snapshot_for_organization(organization_id=organization_id), key_id=key_id)
    connection.close()  # this thread needs the database no more
    scope = scope_for(organization_id)

    async def run() -> int:
        admitted = 0
        deadline = time.monotonic() + TIME_LIMIT_S
        try:
            for _ in range(ATTEMPTS_PER_THREAD):
                if time.monotonic() > deadline:
                    break
                at = now_ms()
                accepted = LifecycleEvent(
                    stage="accepted",
                    request_id=new_request_id(at),
                    at_ms=at,
                    organization_id=organization_id,
                    key_id=key_id,
                    model="gpt-oss-20b",
                    served_model="gpt-oss-20b",
                    plan="exact",
                    allowance_class="standard",
                    cost_units=1,
                    admitted_at_ms=at,
                )
                decision = await get_engine().admit(
                    scope=scope, limits=limits, cost=1, now_ms=at, journal=journal_for(accepted)
                )
                assert not decision.degraded
                admitted += decision.admitted
                await asyncio.sleep(PACE_S)
        finally:
            await aclose_clients()
        return admitted

    start.wait(timeout=30)
    results.append(asyncio.run(run()))


def test_reconciling_in_a_loop_under_load_admits_exactly_the_limit(org: Organization, owner: User) -> None:
    DefaultPlanFactory(slug="exact", short_requests=LIMIT, key_rate_requests=100_000, weekly_requests=100_000)
    key, _ = issue_key(org, verified(owner), name="exactness")
    scope = scope_for(org.pk)
    get_engine().reset_sync(scope=scope)
    results: list[int] = []
    start = threading.Barrier(THREADS + 1)
    threads = [threading.Thread(target=fill, args=(org.pk, key.pk, results, start)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    reconciliations = 0
    corrections = 0
    try:
        start.wait(timeout=30)
        deadline = time.monotonic() + TIME_LIMIT_S
        while any(thread.is_alive() for thread in threads) and time.monotonic() < deadline:
            report: Any = usage_reconcile(since=timezone.now() - timedelta(hours=1))
            reconciliations += 1
            corrections += sum(1 for check in report.drift if check.organization_id == org.pk)
        for thread in threads:
            thread.join(timeout=TIME_LIMIT_S)
        usage_reconcile(since=timezone.now() - timedelta(hours=1))

        assert reconciliations >= 5, "reconciliation must run while the allowance fills"
        assert len(results) == THREADS
        assert sum(results) == LIMIT
        assert UsageEvent.objects.filter(organization=org, billed=True).count() == LIMIT
        assert corrections == 0  # nothing was lost, so nothing needed raising
    finally:
        get_engine().reset_sync(scope=scope)
