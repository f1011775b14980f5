"""Faults injected with the sandbox router: each ends in the right error, a refund where the allowance was not used,
and a lifecycle event that says what happened."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from billing.admission import get_engine
from billing.allowances import request_limits, scope_for
from billing.selectors import plan_snapshot_for_organization
from metering.events import STREAM, LifecycleEvent
from portal.redis import sync_redis
from routing.models import Protocol, RouterTarget
from tests.conftest import Sandbox, free_port
from tests.gateway.conftest import ROUTER_KEY_ENV, Catalog, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


def used(catalog: Catalog) -> dict[str, int]:
    plan = plan_snapshot_for_organization(organization_id=catalog.org.pk)
    states = get_engine().status_sync(
        scope=scope_for(catalog.org.pk), limits=request_limits(plan=plan, key_id=catalog.key_id)
    )
    return {state.name: state.used for state in states}


def completed_events(timeout: float = 3.0, count: int = 1) -> list[LifecycleEvent]:
    client = sync_redis()
    assert client is not None
    deadline = time.monotonic() + timeout
    while True:
        events = [LifecycleEvent.from_fields(fields) for _, fields in client.xrange(STREAM)]
        done = [e for e in events if e.stage == "completed"]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.05)


def test_upstream_down_gives_503_and_refunds(gw: httpx.Client, catalog: Catalog) -> None:
    catalog.target.base_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    catalog.target.save()
    reset_gateway_caches()
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_healthy_backend"
    assert used(catalog) == {"key_rate": 0, "short": 0, "weekly": 0}
    [event] = completed_events()
    assert (event.outcome, event.refunded, event.cost_units) == ("routing_error", True, 0)


def test_upstream_hang_gives_504_within_the_timeout_and_refunds(
    gw: httpx.Client, catalog: Catalog, sandbox: Sandbox, settings: Any
) -> None:
    settings.GATEWAY_FIRST_BYTE_TIMEOUT = 0.5
    sandbox.configure(hang=True)
    started = time.monotonic()
    response = gw.post("/v1/chat/completions", json=CHAT)
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "backend_timeout"
    assert 0.5 <= elapsed < 3
    assert used(catalog)["short"] == 0
    [event] = completed_events()
    assert event.outcome == "backend_timeout" and event.refunded


def test_upstream_error_status_gives_502_and_refunds(gw: httpx.Client, catalog: Catalog, sandbox: Sandbox) -> None:
    sandbox.configure(error_rate=1.0, error_status=503)
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "backend_error"
    assert used(catalog)["short"] == 0


def test_upstream_failure_mid_stream_ends_with_an_error_event_and_records_partial_usage(
    gw: httpx.Client, catalog: Catalog, sandbox: Sandbox
) -> None:
    sandbox.configure(fail_after_tokens=3)
    with gw.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    last = json.loads(lines[-1].removeprefix("data: "))
    assert last["error"]["code"] == "backend_error"
    assert "[DONE]" not in lines[-1]
    [event] = completed_events()
    assert event.outcome == "backend_error"
    assert event.completion_tokens is not None and event.completion_tokens >= 3


def test_a_connection_cut_mid_stream_ends_with_an_error_event(gw: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(fail_after_tokens=2, fail_mode="drop")
    with gw.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert json.loads(lines[-1].removeprefix("data: "))["error"]["code"] == "backend_error"


def test_one_of_two_targets_down_moves_traffic_without_client_errors(
    gw: httpx.Client, catalog: Catalog, sandbox: Sandbox
) -> None:
    RouterTarget.objects.create(
        pool=catalog.pool,
        name="dead",
        base_url=f"http://127.0.0.1:{free_port()}",
        protocol=Protocol.CORTENSOR,
        session_id=7,
        api_key_env=ROUTER_KEY_ENV,
        weight=3,
    )
    reset_gateway_caches()
    statuses = [gw.post("/v1/chat/completions", json=CHAT).status_code for _ in range(15)]
    assert statuses == [200] * 15  # a connect failure is retried once on the other target
    assert sandbox.stats()["completions"] == 15


def test_a_client_leaving_mid_stream_cancels_the_upstream_request(gw: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(token_delay_ms=100)
    with gw.stream("POST", "/v1/chat/completions", json={**CHAT, "max_tokens": 50, "stream": True}) as response:
        for line in response.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break
    deadline = time.monotonic() + 5
    while sandbox.stats()["streams_cancelled"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.stats()["streams_cancelled"] == 1
    [event] = completed_events(timeout=5)
    assert event.outcome == "client_cancelled"
    assert not event.refunded


def test_headers_reach_the_client_before_the_first_streamed_byte(gw: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(token_delay_ms=300)
    started = time.monotonic()
    with gw.stream("POST", "/v1/chat/completions", json={**CHAT, "max_tokens": 5, "stream": True}) as response:
        headers_after = time.monotonic() - started
        assert response.headers["x-ratelimit-remaining-requests"]
        assert response.headers["x-request-id"].startswith("req_")
        chunks = response.iter_raw()
        first = next(chunks)
        first_after = time.monotonic() - started
        rest = first + b"".join(chunks)
    total = time.monotonic() - started
    assert first.startswith(b"data: ")
    assert headers_after < 0.3 and first_after < 0.6  # not buffered until the end (5 tokens x 300 ms)
    assert total > 1.0
    assert rest.endswith(b"data: [DONE]\n\n")


def test_a_request_still_streaming_at_the_flush_has_its_forwarded_event_written(
    gw: httpx.Client, catalog: Catalog, sandbox: Sandbox
) -> None:
    """The `forwarded` event is made only when its request is still in flight at a flush: a slow stream is, so the
    stream holds the event (who, which target, when) before the request completes."""
    sandbox.configure(token_delay_ms=100)
    client = sync_redis()
    assert client is not None
    with gw.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 3
        forwarded: list[LifecycleEvent] = []
        while not forwarded and time.monotonic() < deadline:
            events = [LifecycleEvent.from_fields(fields) for _, fields in client.xrange(STREAM)]
            forwarded = [e for e in events if e.stage == "forwarded" and e.request_id == request_id]
            assert not [e for e in events if e.stage == "completed"]  # still streaming
            time.sleep(0.05)
        for _ in response.iter_lines():
            pass
    [event] = forwarded
    assert (event.key_id, event.organization_id, event.model) == (catalog.key_id, catalog.org.pk, "gpt-oss-20b")
    assert (event.served_model, event.target_id) == ("gpt-oss-20b", catalog.target.pk)
    assert event.at_ms is not None and event.at_ms <= int(time.time() * 1000)
