"""PostgreSQL (durable state: accounts, keys, plans, the ledger) restarted mid-load.

The database here is a private PostgreSQL 15 cluster on a free port (other tests share the machine's server); the
gateway worker, the Celery worker and beat are separate processes pointed at it and at a private Redis. The test
process reads the private ledger with plain SQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from tests.conftest import ROOT, Sandbox
from tests.faults.conftest import (
    CHAT,
    Load,
    Proc,
    Row,
    Seen,
    assert_ledger_matches,
    billed_units,
    celery_processes,
    gateway_process,
    ledger_rows,
    wait_for_rows,
)
from tests.faults.servers import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.faults, pytest.mark.slow]


@dataclass
class Outage:
    seen: list[Seen]
    rows: dict[str, Row]
    billed: int
    new_key_statuses: list[int]
    gateway: Proc


def _run(args: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-3000:]
    return result.stdout.decode()


@pytest.fixture(scope="module")
def outage(sandbox_process: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """One run: load through a gateway worker, `pg_ctl restart -m fast` in the middle, load after it, then a key
    issued after the restart, then the ledger once the drain has caught up."""
    sandbox_process.reset()
    log_dir = tmp_path_factory.mktemp("pg-outage")
    postgres, redis = PrivatePostgres(), PrivateRedis()
    processes: list[Proc] = []
    try:
        postgres.start()
        postgres.create_database()
        redis.start()
        env = {**os.environ, "DATABASE_URL": postgres.url, "REDIS_URL": redis.url}
        _run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env)
        seeded = _run([sys.executable, "-m", "tests.faults.seed", "--sandbox-url", sandbox_process.url], env)
        secret = json.loads(seeded)["secret"]
        gateway, url = gateway_process(env, log_dir)
        processes += [gateway, *celery_processes(env, log_dir)]

        def read() -> dict[str, Row]:
            try:
                with psycopg.connect(postgres.url, connect_timeout=2) as db, db.cursor() as cursor:
                    return ledger_rows(cursor)
            except psycopg.OperationalError:
                return {}

        load = Load([url], secret, count=3000, seconds=60, concurrency=3).start()
        load.wait_for(lambda seen: sum(s.status == 200 for s in seen) >= 20)
        wait_for_rows(read, 10, timeout=30)  # the drain is writing the ledger
        postgres.restart()
        restarted = time.monotonic()
        load.wait_for(lambda seen: sum(s.at > restarted + 1 for s in seen) >= 30)

        new_secret = json.loads(_run([sys.executable, "-m", "tests.faults.seed", "--new-key"], env))["secret"]
        new_key_statuses = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {new_secret}"}, timeout=10) as client:
            for _ in range(5):  # a few tries over a second: a worker may take a moment to notice
                new_key_statuses.append(client.post("/v1/chat/completions", json=CHAT).status_code)
                time.sleep(0.25)
        seen = load.stop()
        # The counters live in Redis; the plan behind them comes from the database, read again once a minute.
        billed = billed_units(url, secret)
        rows = wait_for_rows(read, len(seen) + len(new_key_statuses))
        yield Outage(seen, rows, billed, new_key_statuses, gateway)
    finally:
        for process in processes:
            process.stop()
        redis.close()
        postgres.close()


def test_postgres_restart_mid_load_keeps_serving_and_the_ledger_catches_up(outage: Outage) -> None:
    """Expected: a steady-state request reads nothing from PostgreSQL (keys, plans and routes are in the worker's
    memory, limits in Redis), so clients notice nothing: every request during and after the restart gets its
    answer. Lifecycle events wait in the Redis stream while the database is away; the Celery drain fails its batch
    without acknowledging it (no entry lost), closes its broken connection before its next task, and catches up:
    one ledger row per request, with the outcome the client saw, and the counters equal the requests billed."""
    assert {(s.status, s.code) for s in outage.seen} == {(200, None)}, outage.gateway.log()
    rows = {
        request_id: row for request_id, row in outage.rows.items() if request_id in {s.request_id for s in outage.seen}
    }
    assert_ledger_matches(rows, outage.seen, unanswered_outcomes=set())
    # The load and the new key belong to one organization: every answered request counts, and only those.
    assert outage.billed == len(outage.seen) + outage.new_key_statuses.count(200)


def test_a_key_issued_after_a_postgres_restart_is_accepted(outage: Outage) -> None:
    """Expected: a key the worker has never seen is read from the database on its first use, also after the
    database restarted: the worker replaces its broken connection and answers 200. The same path serves plan and
    routing-table reloads (every 60 s), so this is what keeps a worker serving after a database failover."""
    assert outage.new_key_statuses[-1] == 200, outage.new_key_statuses
