"""Redis (fast state: admission counters, usage stream, key cache, health board) stopped mid-load, then restarted.

The Redis here is private to the test (a free port, append-only file on), so other tests sharing the machine's Redis
are not disturbed; the gateway worker and the drain are separate processes pointed at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT
from tests.faults.conftest import (
    Load,
    Row,
    assert_ledger_matches,
    billed_units,
    gateway_process,
    ledger_rows,
    shared_database_url,
    wait_for_rows,
)
from tests.faults.servers import PrivateRedis
from tests.gateway.conftest import Catalog
from tests.metering.helpers import assert_rollups_exact

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def drain_into_ledger(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "drain_usage"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=60
    )


def test_redis_stopped_mid_load_refuses_with_503_then_recovers_and_loses_no_usage(
    big_plan_catalog: Catalog, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Expected: while Redis is down, admission cannot run and the gateway fails closed (ADMISSION_ON_UNAVAILABLE's
    default): every new request gets 503 `service_unavailable`, none is forwarded unmetered, no 500 and no dropped
    connection. Keys already in the worker's memory keep authenticating. Within a few seconds of Redis coming back,
    requests are admitted again. Events the worker could not write during the outage (refusals, and completions of
    requests admitted just before it) are kept in memory and written after it, so the ledger has one row per request
    with the outcome its client saw, and the allowance counters (kept by Redis's append-only file) equal the
    requests billed."""
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "REDIS_URL": private_redis.url}
    gateway, url = gateway_process(env, tmp_path)
    secret = big_plan_catalog.secret
    try:
        load = Load([url], secret, count=3000, seconds=60, concurrency=3).start()
        load.wait_for(lambda seen: sum(s.status == 200 for s in seen) >= 20)
        private_redis.stop()
        load.wait_for(lambda seen: sum(s.code == "service_unavailable" for s in seen) >= 10)
        private_redis.start()
        restarted = time.monotonic()
        load.wait_for(lambda seen: sum(s.status == 200 and s.at > restarted for s in seen) >= 20)
        seen = load.stop()

        assert {(s.status, s.code) for s in seen} == {(200, None), (503, "service_unavailable")}, gateway.log()
        first_after = min(s.at for s in seen if s.status == 200 and s.at > restarted)
        assert first_after - restarted < 5.0
        assert all(s.status == 200 for s in seen[-10:])

        def read() -> dict[str, Row]:
            drain_into_ledger(env)
            with connection.cursor() as cursor:
                return ledger_rows(cursor)

        rows = wait_for_rows(read, len(seen))
        assert_ledger_matches(rows, seen, unanswered_outcomes=set())
        assert_rollups_exact()
        assert billed_units(url, secret) == sum(1 for s in seen if s.status == 200)
    finally:
        gateway.stop()
