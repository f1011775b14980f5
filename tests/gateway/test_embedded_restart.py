"""Embedded mode (no Redis) keeps its admission counters in the process: a restarted server restores them from the
ledger, so an organization that used its allowance is still at its limit afterwards, as its request log says."""

from __future__ import annotations

import time

import httpx
import pytest

from accounts.models import Organization, User
from metering.models import UsageEvent
from tests.conftest import Sandbox
from tests.gateway.conftest import GatewayWorkers, make_catalog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
ALLOWANCE = 5


def embedded_server() -> GatewayWorkers:
    return GatewayWorkers(1, extra_env={"REDIS_URL": ""})


def test_a_restarted_embedded_server_still_counts_what_the_ledger_holds(
    sandbox: Sandbox, org: Organization, owner: User
) -> None:
    catalog = make_catalog(sandbox, org, owner, short_requests=ALLOWANCE)
    headers = {"Authorization": f"Bearer {catalog.secret}"}
    server = embedded_server()
    try:
        statuses = [
            httpx.post(f"{server.urls[0]}/v1/chat/completions", json=CHAT, headers=headers, timeout=30).status_code
            for _ in range(ALLOWANCE + 1)
        ]
        assert statuses == [200] * ALLOWANCE + [429]
        deadline = time.monotonic() + 10
        while UsageEvent.objects.filter(organization=org, billed=True).count() < ALLOWANCE:
            assert time.monotonic() < deadline, "the embedded server did not write its usage to the ledger"
            time.sleep(0.05)
    finally:
        server.stop()

    restarted = embedded_server()
    try:
        url = restarted.urls[0]
        response = httpx.post(f"{url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30)
        usage = httpx.get(f"{url}/v1/usage", headers=headers, timeout=30).json()
    finally:
        restarted.stop()

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exhausted"
    short = next(limit for limit in usage["limits"] if limit["name"] == "short")
    assert (short["used"], short["remaining"]) == (ALLOWANCE, 0)
