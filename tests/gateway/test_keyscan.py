"""A client address that sends many invalid API keys is slowed down; clients with valid keys are not."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from apikeys.keyformat import generate_key
from gateway.app import gateway
from tests.gateway.conftest import Catalog, ServerThread, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


@pytest.fixture
def strict(settings: SettingsWrapper, catalog: Catalog) -> Iterator[None]:
    settings.GATEWAY_INVALID_KEY_LIMIT = 5
    settings.GATEWAY_INVALID_KEY_WINDOW_SECONDS = 60
    yield
    reset_gateway_caches()  # forget the refused address and its counter, for the tests after this one


def scan(server: ServerThread, count: int) -> list[httpx.Response]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return [
            client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {generate_key()}"})
            for _ in range(count)
        ]


def test_an_address_sending_many_unknown_keys_is_refused_with_retry_after(
    gateway_server: ServerThread, strict: None
) -> None:
    responses = scan(gateway_server, 8)

    assert [r.status_code for r in responses[:5]] == [401] * 5
    assert {r.json()["error"]["code"] for r in responses[:5]} == {"invalid_api_key"}
    assert [r.status_code for r in responses[5:]] == [429] * 3
    refused = responses[5]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert (error["code"], error["category"]) == ("too_many_invalid_keys", "rate_limit")
    assert 1 <= int(refused.headers["retry-after"]) <= 61  # the window, plus at most one bucket
    assert refused.headers["x-request-id"] == error["request_id"]


def test_while_refused_unknown_keys_reach_neither_redis_nor_the_database(
    gateway_server: ServerThread, strict: None
) -> None:
    scan(gateway_server, 6)
    reads = gateway().keys.database_reads
    assert {r.status_code for r in scan(gateway_server, 10)} == {429}
    assert gateway().keys.database_reads == reads


def test_a_valid_key_from_the_same_address_keeps_working(
    gateway_server: ServerThread, gw: httpx.Client, strict: None
) -> None:
    assert gw.post("/v1/chat/completions", json=CHAT).status_code == 200  # the key is in the hot cache
    assert scan(gateway_server, 7)[-1].status_code == 429

    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text


def test_malformed_and_mistyped_keys_count_too(gateway_server: ServerThread, strict: None) -> None:
    key = generate_key()
    with httpx.Client(base_url=gateway_server.url, timeout=10) as client:
        codes = [
            client.get("/v1/models", headers={"Authorization": f"Bearer {text}"}).status_code
            for text in ["sk-not-ours", key[:-1] + ("A" if key[-1] != "A" else "B"), "z", "x", "ctx_live_short", "y"]
        ]
    assert codes[:5] == [401] * 5
    assert codes[5] == 429
