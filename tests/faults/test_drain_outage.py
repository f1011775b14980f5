"""The Celery worker that drains the usage stream into the ledger crashes, stays down for a while, then comes back."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings

from metering.events import STREAM
from metering.models import UsageEvent
from portal.redis import sync_redis
from tests.conftest import wait_until
from tests.faults.conftest import (
    Load,
    assert_ledger_matches,
    billed_units,
    celery_processes,
    drain_in_process,
    shared_database_url,
)
from tests.gateway.conftest import Catalog
from tests.metering.helpers import assert_rollups_exact

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BROKER_QUEUE = "celery"  # Celery's default queue; the project routes no task elsewhere
DRAIN_TASK = settings.CELERY_BEAT_SCHEDULE["metering-drain-usage"]["task"]


def queued_drains(client: redis.Redis) -> int:
    """Drain tasks waiting in the Celery broker's queue (a Redis list on this Redis) for a worker to take them."""
    messages = client.lrange(BROKER_QUEUE, 0, -1)
    return sum(json.loads(message)["headers"]["task"] == DRAIN_TASK for message in messages)


def rows_within(count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while (found := UsageEvent.objects.filter(stage="completed").count()) < count and time.monotonic() < deadline:
        time.sleep(0.25)
    return found


def test_a_drain_outage_delays_the_ledger_but_loses_nothing(
    gateway_worker: str, big_plan_catalog: Catalog, tmp_path: Path
) -> None:
    """Expected: the gateway does not depend on the drain; with the Celery worker killed (SIGKILL, mid-batch or
    not) every request is still answered and counted against the allowance at once (admission is in Redis), and
    its events wait in the Redis stream: the ledger stops growing. When a worker is back, it takes over the dead
    worker's unacknowledged entries (after METERING_CLAIM_IDLE_SECONDS) and reads the backlog: one row per
    request, outcomes as the clients saw them, nothing counted twice."""
    env = {"DATABASE_URL": shared_database_url(), "REDIS_URL": settings.REDIS_URL}
    url, secret = gateway_worker, big_plan_catalog.secret
    first = celery_processes(env, tmp_path)
    later = []
    try:
        before = Load([url], secret, count=20, seconds=20, concurrency=2).start()
        before.wait_for(lambda seen: len(seen) == 20)
        seen = before.stop()
        assert rows_within(20, timeout=45) == 20, first[0].log()

        first[0].kill()  # the worker; beat keeps queueing drain tasks nobody takes
        during = Load([url], secret, count=40, seconds=30, concurrency=4).start()
        during.wait_for(lambda seen: len(seen) == 40)
        seen += during.stop()
        assert {(s.status, s.code) for s in seen} == {(200, None)}
        client = sync_redis()
        assert client is not None
        # Two drains come due after the last request and no worker takes them: had one run, the ledger would grow.
        due = queued_drains(client)
        wait_until(lambda: queued_drains(client) >= due + 2, timeout=10, what="beat to queue two more drains")
        assert UsageEvent.objects.count() == 20  # nothing drained while the worker is away
        [group] = client.xinfo_groups(STREAM)
        assert group["lag"] >= 40 * 2  # the backlog waits in the stream, unread: accepted and completed events
        assert billed_units(url, secret) == 60  # the allowance counted every answered request already

        later = celery_processes(env, tmp_path, suffix="-2", beat=False)
        assert rows_within(60, timeout=60) == 60, later[0].log()
        rows = drain_in_process(60, timeout=1)  # nothing left over for a drain in this process either
        assert_ledger_matches(rows, seen, unanswered_outcomes=set())
        assert_rollups_exact()  # the roll-ups count each request once
    finally:
        for process in [*first, *later]:
            process.stop()
