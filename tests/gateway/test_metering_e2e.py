"""N requests through the gateway (mixed outcomes, streaming and not) → after the drain, exactly N ledger rows whose
outcomes and token sums equal what the clients saw; the allowance counters match the ledger."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from metering.drain import usage_drain
from metering.models import UsageEvent
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog
from tests.metering.helpers import assert_rollups_exact

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 5}


def drain_until(count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (
        UsageEvent.objects.filter(completed_at__isnull=False).count()
        + UsageEvent.objects.filter(stage="refused").count()
        < count
        and time.monotonic() < deadline
    ):
        usage_drain()
        time.sleep(0.05)


def test_every_request_has_one_ledger_row_equal_to_what_the_client_saw(
    gw: httpx.Client, catalog: Catalog, sandbox: Sandbox
) -> None:
    seen: dict[str, tuple[int, int | None]] = {}  # request id -> (status, completion tokens the client got)

    for index in range(6):
        response = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 3 + index})
        seen[response.headers["x-request-id"]] = (200, response.json()["usage"]["completion_tokens"])
    for _ in range(4):
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        with gw.stream("POST", "/v1/chat/completions", json=body) as response:
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        seen[response.headers["x-request-id"]] = (200, chunks[-1]["usage"]["completion_tokens"])
    refused = gw.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    seen[refused.headers["x-request-id"]] = (404, None)
    sandbox.configure(error_rate=1.0, error_status=500)
    failed = gw.post("/v1/chat/completions", json=CHAT)
    seen[failed.headers["x-request-id"]] = (502, None)
    sandbox.configure(error_rate=0.0)

    drain_until(len(seen))

    rows = {row.request_id: row for row in UsageEvent.objects.all()}
    assert set(rows) == set(seen)
    for request_id, (status, tokens) in seen.items():
        row = rows[request_id]
        assert row.status_code == status, request_id
        if status == 200:
            assert (row.outcome, row.billed, row.completion_tokens) == ("ok", True, tokens)
            assert row.accepted_at and row.forwarded_at and row.completed_at and row.recorded_at
    assert rows[refused.headers["x-request-id"]].outcome == "client_error"
    assert not rows[refused.headers["x-request-id"]].billed
    failed_row = rows[failed.headers["x-request-id"]]
    assert (failed_row.outcome, failed_row.refunded, failed_row.billed) == ("backend_error", True, False)
    assert sum(r.completion_tokens or 0 for r in rows.values() if r.outcome == "ok") == sum(
        t for s, t in seen.values() if s == 200 and t
    )
    assert_rollups_exact()

    usage = gw.get("/v1/usage").json()
    short = next(limit for limit in usage["limits"] if limit["name"] == "short")
    assert short["used"] == sum(1 for r in rows.values() if r.billed) == 10
