"""Clients that drop their connection: mid-stream, and before a non-streamed answer arrives."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Sandbox
from tests.faults.conftest import CHAT, STREAM, Seen, assert_ledger_matches, billed_units, drain_in_process
from tests.gateway.conftest import Catalog

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STREAMS = 12
IMPATIENT = 6


async def leave_after_first_token(client: httpx.AsyncClient, url: str) -> Seen:
    started = time.monotonic()
    async with client.stream("POST", f"{url}/v1/chat/completions", json={**STREAM, "max_tokens": 40}) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break  # leaving the block closes the connection mid-stream
        else:
            raise AssertionError("the stream ended before its first token")
    return Seen(started, response.status_code, response.headers["x-request-id"], "client_cancelled", True)


async def give_up_before_the_answer(client: httpx.AsyncClient, url: str) -> Seen:
    started = time.monotonic()
    try:
        await client.post(f"{url}/v1/chat/completions", json=CHAT, timeout=0.3)
    except httpx.TimeoutException:
        return Seen(started, None, None, None)
    raise AssertionError("the answer came before the client gave up")


def test_clients_dropping_connections_are_recorded_and_cancel_the_upstream_work(
    gateway_worker: str, big_plan_catalog: Catalog, sandbox: Sandbox
) -> None:
    """Expected: a client that closes its connection mid-stream ends the request as `client_cancelled`: the
    gateway closes the upstream stream at once (the router node stops generating), the tokens relayed so far are
    recorded, and the request is billed (the client received part of an answer; not a backend failure, so no
    refund). A client that gives up before a non-streamed answer arrives leaves a row too, billed, and no other
    request is affected. Every request has exactly one ledger row; nothing is left open."""
    url, secret = gateway_worker, big_plan_catalog.secret
    sandbox.configure(token_delay_ms=100)

    async def run() -> list[Seen]:
        limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=15, headers={"Authorization": f"Bearer {secret}"}, limits=limits) as c:
            streams = [leave_after_first_token(c, url) for _ in range(STREAMS)]
            return list(await asyncio.gather(*streams))

    seen = asyncio.run(run())
    deadline = time.monotonic() + 10
    while sandbox.stats()["streams_cancelled"] < STREAMS and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.stats()["streams_cancelled"] == STREAMS

    sandbox.reset()
    sandbox.configure(latency_ms=600)  # after the client gave up (0.3 s), before the first-byte timeout (1 s)

    async def impatient() -> list[Seen]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}) as c:
            return list(await asyncio.gather(*(give_up_before_the_answer(c, url) for _ in range(IMPATIENT))))

    seen += asyncio.run(impatient())

    # Drains until every row is closed: the abandoned requests' once the upstream answers them (after 0.6 s).
    rows = drain_in_process(STREAMS + IMPATIENT)
    assert len(rows) == STREAMS + IMPATIENT
    assert {row.stage for row in rows.values()} == {"completed"}
    assert_ledger_matches(rows, seen, unanswered_outcomes={"client_cancelled", "ok"})
    assert billed_units(url, secret) == STREAMS + IMPATIENT
    assert all((rows[s.request_id].completion_tokens or 0) >= 1 for s in seen if s.request_id)
