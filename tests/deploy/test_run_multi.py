"""Limits hold exactly across gateway processes that share nothing but Redis and PostgreSQL, and `deploy/run-multi`
runs (and stops) the production layout: gunicorn with 3 uvicorn workers, a Celery worker and beat.

The plan allows a key 20 requests a minute and the organization 30 per short window. Key A sends 60 requests at
once: exactly 20 get in (its rate limit). Key B then sends 60: exactly 10 get in (the organization's 30, less key A's
20). A `limit x instances` leak would show as up to 60 / 90 admitted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from metering.models import UsageEvent
from tests.conftest import ROOT, Sandbox, free_port, wait_until_listening
from tests.factories import issue_key, verified
from tests.faults.conftest import shared_database_url
from tests.gateway.conftest import Catalog, GatewayWorkers, make_catalog, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
KEY_RATE, SHORT = 20, 30
BURST = 60


@pytest.fixture
def limited(transactional_db: Any, sandbox: Sandbox, org: Any, owner: Any) -> tuple[Catalog, str]:
    """The catalog with the plan above, and a second key of the same organization."""
    catalog = make_catalog(sandbox, org, owner, key_rate_requests=KEY_RATE, short_requests=SHORT)
    _, second = issue_key(org, verified(owner), name="second key")
    reset_gateway_caches()
    return catalog, str(second)


def burst(urls: list[str], secret: str) -> list[httpx.Response]:
    """BURST concurrent requests with one key, spread round-robin over the given gateway URLs."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            auth = {"Authorization": f"Bearer {secret}"}
            calls = [
                client.post(f"{urls[i % len(urls)]}/v1/chat/completions", json=CHAT, headers=auth) for i in range(BURST)
            ]
            return list(await asyncio.gather(*calls))

    return asyncio.run(run())


def assert_limits_hold(urls: list[str], catalog: Catalog, second: str, sandbox: Sandbox) -> dict[str, int]:
    """Runs both bursts; returns request id -> status as the clients saw them."""
    first = burst(urls, catalog.secret)
    assert [r.status_code for r in first].count(200) == KEY_RATE, [r.text for r in first][:3]
    assert {r.json()["error"]["code"] for r in first if r.status_code != 200} == {"rate_limit_exceeded"}
    then = burst(urls, second)
    assert [r.status_code for r in then].count(200) == SHORT - KEY_RATE, [r.status_code for r in then]
    assert {r.json()["error"]["code"] for r in then if r.status_code != 200} == {"quota_exhausted"}
    assert sandbox.stats()["completions"] == SHORT  # nothing beyond the allowance reached the upstream
    usage = httpx.get(f"{urls[0]}/v1/usage", headers={"Authorization": f"Bearer {second}"}, timeout=10).json()
    assert next(limit for limit in usage["limits"] if limit["name"] == "short")["used"] == SHORT
    return {r.headers["x-request-id"]: r.status_code for r in [*first, *then]}


def test_limits_hold_exactly_across_three_separate_gateway_processes(
    limited: tuple[Catalog, str], sandbox: Sandbox
) -> None:
    catalog, second = limited
    workers = GatewayWorkers(3)
    try:
        assert_limits_hold(workers.urls, catalog, second, sandbox)
    finally:
        workers.stop()


def _session_members(session_id: int) -> list[int]:
    """Live processes in the session run-multi leads (its gunicorn, Celery and their children)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session_id and (entry / "stat").read_text().split()[2] != "Z":
                    members.append(int(entry.name))
            except (OSError, IndexError):
                continue
    return members


@pytest.fixture
def run_multi(limited: tuple[Catalog, str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "WORKERS": "3",
        "BIND": f"127.0.0.1:{port}",
        "CELERY_CONCURRENCY": "1",
        "MIGRATE": "0",
        "SKIP_INSTALL": "1",
        "RUN_DIR": str(tmp_path),
        "LOG_LEVEL": "WARNING",
        "STOP_TIMEOUT": "15",
    }
    with (tmp_path / "run-multi.log").open("wb") as log:
        process = subprocess.Popen(
            [str(ROOT / "deploy" / "run-multi")], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_until_listening(port, process, timeout=60)
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_run_multi_serves_with_three_workers_drains_with_celery_and_stops_on_ctrl_c(
    run_multi: tuple[subprocess.Popen[bytes], str], limited: tuple[Catalog, str], sandbox: Sandbox, tmp_path: Path
) -> None:
    process, url = run_multi
    catalog, second = limited
    seen = assert_limits_hold([url], catalog, second, sandbox)

    # The Celery worker (started by beat every second) writes one ledger row per request the clients saw.
    deadline = time.monotonic() + 45
    while UsageEvent.objects.count() < len(seen) and time.monotonic() < deadline:
        time.sleep(0.25)
    rows = dict(UsageEvent.objects.values_list("request_id", "status_code"))
    assert rows == seen, (tmp_path / "run-multi.log").read_text()[-3000:]

    members = _session_members(process.pid)
    assert len(members) >= 6  # script, gunicorn master + 3 workers, Celery worker, beat
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=40) == 0
    deadline = time.monotonic() + 5
    while _session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_members(process.pid) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)
