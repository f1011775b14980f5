"""Several gateway worker processes sharing one Redis and one database, as production runs them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog, GatewayWorkers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture
def workers(request: pytest.FixtureRequest, catalog: Catalog) -> Iterator[GatewayWorkers]:
    group = GatewayWorkers(getattr(request, "param", 2))
    yield group
    group.stop()


def test_a_revoked_key_is_refused_by_every_worker_within_one_second(workers: GatewayWorkers, catalog: Catalog) -> None:
    auth = {"Authorization": f"Bearer {catalog.secret}"}
    for url in workers.urls:  # every worker has the key in its hot cache
        assert httpx.get(f"{url}/v1/models", headers=auth).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers=auth).status_code == 200

    apikey_revoke(key=ApiKey.objects.get(pk=catalog.key_id), actor=None)
    revoked_at = time.monotonic()

    refused_after = {}
    while len(refused_after) < len(workers.urls) and time.monotonic() - revoked_at < 3:
        for url in workers.urls:
            if url not in refused_after:
                response = httpx.get(f"{url}/v1/models", headers=auth)
                if response.status_code == 401:
                    assert response.json()["error"]["code"] == "key_revoked"
                    refused_after[url] = time.monotonic() - revoked_at
        time.sleep(0.01)
    assert len(refused_after) == len(workers.urls), refused_after
    assert max(refused_after.values()) < 1.0, refused_after


@pytest.mark.parametrize("workers", [3], indirect=True)
def test_limits_hold_exactly_across_three_workers(workers: GatewayWorkers, catalog: Catalog, sandbox: Sandbox) -> None:
    """The key's limit is 20 per minute: 60 concurrent requests spread over 3 processes admit exactly 20."""
    auth = {"Authorization": f"Bearer {catalog.secret}"}

    async def hammer() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            calls = [
                client.post(f"{workers.urls[i % 3]}/v1/chat/completions", json=CHAT, headers=auth) for i in range(60)
            ]
            return [response.status_code for response in await asyncio.gather(*calls)]

    statuses = asyncio.run(hammer())
    assert statuses.count(200) == 20, statuses
    assert statuses.count(429) == 40
    assert sandbox.stats()["completions"] == 20


@pytest.mark.parametrize("workers", [1], indirect=True)
def test_a_worker_killed_under_load_leaves_a_row_for_every_admitted_request(
    workers: GatewayWorkers, catalog: Catalog, sandbox: Sandbox
) -> None:
    """SIGKILL mid-request: each admitted request keeps its ledger row; the in-flight ones close as `unknown`."""
    import os
    import signal
    from datetime import timedelta

    from django.utils import timezone

    from metering.drain import usage_drain
    from metering.models import UsageEvent
    from metering.reconcile import usage_requests_close_stale

    sandbox.configure(latency_ms=1500)
    auth = {"Authorization": f"Bearer {catalog.secret}"}

    async def load() -> list[object]:
        async with httpx.AsyncClient(timeout=10) as client:
            calls = [client.post(f"{workers.urls[0]}/v1/chat/completions", json=CHAT, headers=auth) for _ in range(8)]
            killer = asyncio.get_running_loop().call_later(0.7, os.kill, workers.processes[0].pid, signal.SIGKILL)
            results = await asyncio.gather(*calls, return_exceptions=True)
            killer.cancel()
            return results

    results = asyncio.run(load())
    assert all(isinstance(result, httpx.HTTPError) for result in results)  # nobody got an answer
    usage_drain()
    rows = list(UsageEvent.objects.all())
    assert len(rows) == 8  # every admitted request was recorded before it was forwarded
    assert all(row.accepted_at is not None and row.completed_at is None for row in rows)
    closed = usage_requests_close_stale(now=timezone.now() + timedelta(hours=1))
    assert sorted(closed) == sorted(row.request_id for row in rows)
    assert set(UsageEvent.objects.values_list("outcome", flat=True)) == {"unknown"}
