"""Hostile values in the fields a client controls: refused before admission with the field named, never billed, and
every refusal the client got a request id for is in the ledger, without holding back anyone else's requests."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metering.conf import dead_stream
from metering.drain import usage_drain
from metering.models import UsageEvent
from portal.redis import sync_redis
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
TEXT = {"model": "gpt-oss-20b", "prompt": "hello", "max_tokens": 4}


def drain_until(request_ids: set[str], timeout: float = 10.0) -> dict[str, UsageEvent]:
    """Drain until every one of these requests has its final row (completed or refused), or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        usage_drain()
        rows = {row.request_id: row for row in UsageEvent.objects.filter(request_id__in=request_ids)}
        final = {rid for rid, row in rows.items() if row.stage in ("refused", "completed")}
        if final == request_ids or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def dead_letters() -> int:
    client = sync_redis()
    assert client is not None
    return int(client.xlen(dead_stream()))


def short_used(gw: httpx.Client) -> int:
    usage = gw.get("/v1/usage").json()
    return int(next(limit["used"] for limit in usage["limits"] if limit["name"] == "short"))


@pytest.mark.parametrize(
    ("model", "why"),
    [
        ("x\u0000", "control"),
        ("gpt-oss-20b\u0000", "control"),
        ("gpt\u200boss", "control"),  # a zero-width space: invisible, in no alias
        ("gpt\noss", "control"),
        ("m" * 81, "longer than 80"),
        ("m" * 200, "longer than 80"),
    ],
)
def test_a_model_name_no_alias_can_hold_is_a_400_that_names_model_and_reaches_the_ledger(
    gw: httpx.Client, model: str, why: str
) -> None:
    dead_before = dead_letters()

    response = gw.post("/v1/chat/completions", json={**CHAT, "model": model})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "model")
    assert why in error["message"]
    request_id = response.headers["x-request-id"]
    rows = drain_until({request_id})
    assert rows[request_id].stage == "refused" and not rows[request_id].billed
    assert dead_letters() == dead_before  # nothing the gateway sent was set aside


def test_a_hostile_model_name_does_not_hold_back_other_requests_in_the_ledger(gw: httpx.Client) -> None:
    ids = set()
    for index in range(30):
        body = {**CHAT, "model": "x\u0000"} if index % 3 == 0 else CHAT
        ids.add(gw.post("/v1/chat/completions", json=body).headers["x-request-id"])

    rows = drain_until(ids)

    assert set(rows) == ids
    assert sum(1 for row in rows.values() if row.outcome == "ok") == 20
    assert sum(1 for row in rows.values() if row.stage == "refused") == 10


@pytest.mark.parametrize("n", [True, 1.0, "1", 2, 0])
def test_n_must_be_the_integer_one(gw: httpx.Client, n: Any) -> None:
    response = gw.post("/v1/chat/completions", json={**CHAT, "n": n})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "n"


def test_n_of_one_is_served(gw: httpx.Client) -> None:
    assert gw.post("/v1/chat/completions", json={**CHAT, "n": 1}).status_code == 200


@pytest.mark.parametrize("prompt", ["", [""]])
def test_an_empty_prompt_is_refused_before_admission_and_not_billed(gw: httpx.Client, prompt: Any) -> None:
    before = short_used(gw)

    response = gw.post("/v1/completions", json={**TEXT, "prompt": prompt})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    assert short_used(gw) == before
    request_id = response.headers["x-request-id"]
    row = drain_until({request_id})[request_id]
    assert (row.stage, row.billed) == ("refused", False)


def test_a_backend_refusal_is_refunded_and_says_what_to_fix_without_router_text(
    gw: httpx.Client, sandbox: Sandbox
) -> None:
    before = short_used(gw)

    # The sandbox router, like a real backend, caps max_tokens below the gateway's own bound.
    response = gw.post("/v1/chat/completions", json={**CHAT, "max_tokens": 5000})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert "'max_tokens' must be an integer from 1 to 4096" in error["message"]
    assert "127.0.0.1" not in response.text and str(sandbox.port) not in response.text
    assert short_used(gw) == before
    request_id = response.headers["x-request-id"]
    row = drain_until({request_id})[request_id]
    assert (row.outcome, row.billed, row.refunded) == ("client_error", False, True)


def test_a_backend_refusal_that_names_the_router_gets_the_generic_message(gw: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(error_rate=1.0, error_status=422, error_message="session 7 on router 10.1.2.3:5010 refused it")

    response = gw.post("/v1/chat/completions", json=CHAT)

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message == "The backend refused this request as invalid; check its parameters."
    assert "10.1.2.3" not in response.text and "session 7" not in response.text


def _nested(depth: int) -> bytes:
    return b'{"model": "gpt-oss-20b", "messages": ' + b"[" * depth + b"]" * depth + b"}"


_HOSTILE_TEXT = st.sampled_from(
    ["\u0000", "a\u0000b", "\u200b", "\u202e", "\ufeff", "\x7f", "\n", "m" * 81, "m" * 5000, "gpt-oss-20b", ""]
)
_HOSTILE_VALUE = st.one_of(
    _HOSTILE_TEXT,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([True, False, None, 1.0, 1e308, -0.0, [], {}]),
)


def test_fuzzed_hostile_values_get_4xx_and_every_answered_request_reaches_the_ledger(
    gw: httpx.Client, catalog: Catalog
) -> None:
    catalog.plan.key_rate_requests = 100_000
    catalog.plan.save()
    reset_gateway_caches()
    answered: set[str] = set()
    dead_before = dead_letters()
    statuses: set[int] = set()

    def post(path: str, content: bytes) -> None:
        response = gw.post(path, content=content, headers={"content-type": "application/json"})
        statuses.add(response.status_code)
        assert response.status_code < 500, response.text
        assert "Traceback" not in response.text
        answered.add(response.headers["x-request-id"])

    for depth in (10, 1_000, 1_025, 5_000):
        post("/v1/chat/completions", _nested(depth))
    for raw in (
        b'{"model": "\\ud800"}',
        b'{"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "\\udfff"}]}',
    ):
        post("/v1/chat/completions", raw)

    @settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(
        field=st.sampled_from(["model", "prompt", "n", "max_tokens", "temperature", "stream", "user", "\u0000"]),
        value=_HOSTILE_VALUE,
        path=st.sampled_from(["/v1/chat/completions", "/v1/completions"]),
    )
    def check(field: str, value: Any, path: str) -> None:
        body = {**(CHAT if path.endswith("chat/completions") else TEXT), field: value}
        post(path, json.dumps(body).encode())

    check()

    assert 400 in statuses
    rows = drain_until(answered, timeout=30)
    assert set(rows) == answered  # every request a client got an id for has its row
    assert dead_letters() == dead_before
