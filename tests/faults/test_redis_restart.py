"""Redis (fast state: admission counters, usage stream, key cache, health board) stopped mid-load, then restarted.

The Redis here is private to the test (a free port, append-only file on), so other tests sharing the machine's Redis
are not disturbed; the gateway worker and the drain are separate processes pointed at it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis
from django.db import connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.conftest import ROOT, wait_until
from tests.faults.conftest import (
    CHAT,
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


def reconcile(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "reconcile", "--hours", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
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
        # An admission call Redis ran as it went away (after the gateway had answered 503) may have counted its
        # request; the ledger says refused, and reconciliation brings the counters back to what the ledger bills.
        reconcile(env)
        assert billed_units(url, secret) == sum(1 for s in seen if s.status == 200)
    finally:
        gateway.stop()


def redis_stalled(url: str) -> bool:
    """Redis does not answer a PING within 50 ms: it is running a script (it runs one command at a time)."""
    probe = redis.Redis.from_url(url, socket_timeout=0.05, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        probe.ping()
    except redis.TimeoutError:
        return True
    finally:
        probe.close()
    return False


# Keeps Redis busy (it runs one command at a time) for `ARGV[1]` microseconds of its own clock.
BUSY_SCRIPT = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  t = redis.call('TIME')
until t[1] * 1000000 + t[2] - start > tonumber(ARGV[1])
return 1
"""


def test_a_request_refused_because_redis_was_too_slow_is_not_billed(
    big_plan_catalog: Catalog, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    """Expected: Redis stalls (busy for 2 s, longer than the gateway's 1 s Redis timeout) while a request waits for
    admission. The gateway fails closed: the client gets 503 `service_unavailable` and is not charged: its ledger
    row says refused, not billed, and the allowance does not count it, even though Redis runs the queued admission
    call once it is free again."""
    env = {**os.environ, "DATABASE_URL": shared_database_url(), "REDIS_URL": private_redis.url}
    gateway, url = gateway_process(env, tmp_path)
    secret = big_plan_catalog.secret
    auth = {"Authorization": f"Bearer {secret}"}
    try:
        assert httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth, timeout=10).status_code == 200
        busy = redis.Redis.from_url(private_redis.url, socket_timeout=10)
        stall = threading.Thread(target=busy.eval, args=(BUSY_SCRIPT, 0, 2_000_000))
        stall.start()
        wait_until(lambda: redis_stalled(private_redis.url), timeout=5, what="Redis to be busy with the script")
        refused = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=auth, timeout=10)
        stall.join(timeout=10)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "service_unavailable"

        def read() -> dict[str, Row]:
            drain_into_ledger(env)
            with connection.cursor() as cursor:
                return ledger_rows(cursor)

        # Both rows closed: the refusal arrives once the gateway's background flush retries the write Redis timed out.
        row = wait_for_rows(read, 2, timeout=20)[refused.headers["x-request-id"]]
        assert (row.stage, row.billed) == ("refused", False), row
        reconcile(env)  # the late admission counted the request in Redis; the ledger, which did not, wins
        assert billed_units(url, secret) == 1
    finally:
        gateway.stop()
