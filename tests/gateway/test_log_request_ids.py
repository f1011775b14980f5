"""Every line the gateway logs while serving a request carries that request's id, whatever the message's arguments;
no id outlives its request (portal/request_context.py)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

import gateway.app as gateway_app
from apikeys.keyformat import generate_key
from gateway.state import Gateway
from portal.request_context import request_id_var
from tests.conftest import json_log_lines
from tests.gateway.conftest import Catalog, ServerThread, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture
def keyscan_lines() -> Iterator[io.StringIO]:
    """The key-scan guard's lines, formatted as production formats them."""
    with json_log_lines("gateway.keyscan") as buffer:
        yield buffer


def test_a_line_logged_without_the_id_in_its_arguments_carries_the_requests_id(
    gateway_server: ServerThread,
    catalog: Catalog,
    settings: SettingsWrapper,
    keyscan_lines: io.StringIO,
) -> None:
    settings.GATEWAY_INVALID_KEY_LIMIT = 2
    try:
        with httpx.Client(base_url=gateway_server.url, timeout=10) as client:
            responses = [
                client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {generate_key()}"})
                for _ in range(3)
            ]
    finally:
        reset_gateway_caches()

    assert [r.status_code for r in responses] == [401, 401, 429]
    (line,) = (json.loads(text) for text in keyscan_lines.getvalue().splitlines())
    # "client address %s sent too many invalid API keys; ...": the address and a duration are its only arguments.
    assert "too many invalid API keys" in line["message"]
    assert line["request_id"] == responses[2].headers["x-request-id"]


def test_background_tasks_started_during_a_request_do_not_carry_its_id(
    monkeypatch: pytest.MonkeyPatch, catalog: Catalog
) -> None:
    """Served without lifespan events the gateway starts its background tasks (the usage flush, the invalidation
    listener) inside its first request: they must not log every later line as that request."""
    fresh = Gateway()
    monkeypatch.setattr(gateway_app, "_gateway", fresh)

    async def first_request() -> tuple[httpx.Response, Any, Any, str | None]:
        transport = httpx.ASGITransport(app=gateway_app.application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            response = await client.get("/v1/no-such-endpoint")
        assert fresh.started and fresh.usage._task is not None and fresh.listener._task is not None
        flush, listener = fresh.usage._task.get_context(), fresh.listener._task.get_context()
        after = request_id_var.get()  # this task ran the request: the id must be gone once it ended
        await fresh.stop()
        return response, flush, listener, after

    response, flush, listener, after = asyncio.run(first_request())

    assert response.status_code == 404 and response.headers["x-request-id"].startswith("req_")
    assert flush.get(request_id_var) is None
    assert listener.get(request_id_var) is None
    assert after is None
