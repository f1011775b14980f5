"""The gateway's check pipeline over real HTTP, in docs/gateway.md's order, each refusal with its own code."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from apikeys.keyformat import generate_key
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke, apikey_update
from tests.conftest import Sandbox
from tests.gateway.conftest import QUERIES, Catalog, ServerThread, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    error = response.json()["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["category"] and error["next_step"]
    return dict(error)


def test_a_chat_completion_goes_through(gw: httpx.Client) -> None:
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-oss-20b"
    content = body["choices"][0]["message"]["content"]
    assert len(content.split()) == 4
    assert gw.post("/v1/chat/completions", json=CHAT).json()["choices"][0]["message"]["content"] == content
    assert body["usage"]["completion_tokens"] == 4
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["x-ratelimit-limit-requests"] == "20"
    assert response.headers["x-ratelimit-remaining-requests"] == "19"
    assert (
        response.headers["ratelimit-policy"] == '"key_rate";q=20;w=60, "short";q=200;w=18000, "weekly";q=1000;w=604800'
    )


def test_the_request_id_is_passed_upstream(gw: httpx.Client, sandbox: Sandbox) -> None:
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert sandbox.stats()["last_client_reference"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    ("headers", "hint"),
    [
        ({}, "No API key"),
        ({"Authorization": "Bearer sk-not-ours"}, "not a Cortensor Portal API key"),
        ({"Authorization": "Basic abc"}, "No API key"),
    ],
)
def test_missing_or_foreign_keys_get_invalid_api_key(
    gateway_server: ServerThread, catalog: Catalog, headers: dict[str, str], hint: str
) -> None:
    response = httpx.post(f"{gateway_server.url}/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 401
    error = error_of(response)
    assert error["code"] == "invalid_api_key"
    assert hint in error["message"]


def test_a_typo_is_told_apart_from_an_unknown_key(gateway_server: ServerThread, catalog: Catalog) -> None:
    secret = catalog.secret
    typo = secret[:20] + ("x" if secret[20] != "x" else "y") + secret[21:]
    response = httpx.post(
        f"{gateway_server.url}/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {typo}"}
    )
    assert "typo" in error_of(response)["message"]
    unknown = httpx.post(f"{gateway_server.url}/v1/chat/completions", json=CHAT, headers={"x-api-key": generate_key()})
    error = error_of(unknown)
    assert error["code"] == "invalid_api_key" and "does not exist" in error["message"]


def test_a_revoked_key_over_its_rate_limit_gets_key_revoked_not_429(gw: httpx.Client, catalog: Catalog) -> None:
    for _ in range(20):
        assert gw.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert gw.post("/v1/chat/completions", json=CHAT).status_code == 429
    apikey_revoke(key=ApiKey.objects.get(pk=catalog.key_id), actor=None)
    reset_gateway_caches()
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert error_of(response)["code"] == "key_revoked"


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        (b"{not json", None, 400),
        (b"[1, 2]", None, 400),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), "model", 400),
        (json.dumps({"model": "gpt-oss-20b"}).encode(), "messages", 400),
        (json.dumps({"model": "gpt-oss-20b", "messages": []}).encode(), "messages", 400),
        (
            json.dumps({"model": "gpt-oss-20b", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            "messages[0].role",
            400,
        ),
        (json.dumps({**CHAT, "temperature": 7}).encode(), "temperature", 400),
        (json.dumps({**CHAT, "max_tokens": 0}).encode(), "max_tokens", 400),
        (json.dumps({**CHAT, "stream": "yes"}).encode(), "stream", 400),
    ],
)
def test_bad_bodies_get_400_with_the_param_to_fix(
    gw: httpx.Client, body: bytes, param: str | None, status: int
) -> None:
    response = gw.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error["param"] == param


def test_an_oversized_body_gets_413(gw: httpx.Client) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * (1_048_576 + 10)}]}
    response = gw.post("/v1/chat/completions", json=big)
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


def test_an_unknown_model_gets_404_model_not_found(gw: httpx.Client) -> None:
    response = gw.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"})
    assert response.status_code == 404
    error = error_of(response)
    assert (error["code"], error["param"]) == ("model_not_found", "model")


def test_a_model_outside_the_plan_gets_403(gw: httpx.Client, catalog: Catalog) -> None:
    from routing.models import ModelAlias

    ModelAlias.objects.create(alias="gemma-4-26b", pool=catalog.pool, family="gemma", weight=2)
    reset_gateway_caches()
    response = gw.post("/v1/chat/completions", json={**CHAT, "model": "gemma-4-26b"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "model_not_allowed"


def test_a_key_limited_to_other_models_gets_403(gw: httpx.Client, catalog: Catalog) -> None:
    apikey_update(key=ApiKey.objects.get(pk=catalog.key_id), actor=None, allowed_models=["gemma-4-26b"])
    reset_gateway_caches()
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 403
    assert error_of(response)["code"] == "model_not_allowed"


def test_the_key_rate_limit_refuses_with_retry_after(gw: httpx.Client) -> None:
    statuses = [gw.post("/v1/chat/completions", json=CHAT).status_code for _ in range(21)]
    assert statuses.count(200) == 20
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limit_exceeded"
    assert error["type"] == "rate_limit_error"
    # A unit frees one window after it was used, at most one bucket (0.5 s here) later: docs/admission.md.
    assert 1 <= int(response.headers["retry-after"]) <= 61
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_the_org_allowance_refuses_with_quota_exhausted(gw: httpx.Client, catalog: Catalog) -> None:
    catalog.plan.short_requests = 3
    catalog.plan.save()
    reset_gateway_caches()
    assert [gw.post("/v1/chat/completions", json=CHAT).status_code for _ in range(3)] == [200, 200, 200]
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "quota_exhausted"
    assert error["type"] == "insufficient_quota"
    assert "short-window allowance of 3 requests" in error["message"]


def test_wrong_method_and_unknown_path(gw: httpx.Client) -> None:
    response = gw.get("/v1/chat/completions")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    response = gw.post("/v1/embeddings", json={})
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_models_lists_what_this_key_may_call(gw: httpx.Client, catalog: Catalog) -> None:
    from routing.models import ModelAlias

    ModelAlias.objects.create(alias="gemma-4-26b", pool=catalog.pool, family="gemma", weight=2)
    reset_gateway_caches()
    listing = gw.get("/v1/models").json()
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == ["gpt-oss-20b"]


def test_usage_reports_the_numbers_admission_enforces(gw: httpx.Client) -> None:
    for _ in range(3):
        gw.post("/v1/chat/completions", json=CHAT)
    usage = gw.get("/v1/usage").json()
    assert usage["plan"]["slug"] == "free"
    by_name = {limit["name"]: limit for limit in usage["limits"]}
    assert by_name["key_rate"]["used"] == 3 and by_name["key_rate"]["remaining"] == 17
    assert by_name["short"]["used"] == 3 and by_name["short"]["limit"] == 200
    assert by_name["weekly"]["remaining"] == 997
    assert by_name["short"]["resets_at"] is not None


def test_steady_state_requests_make_no_database_queries(gw: httpx.Client) -> None:
    cold = QUERIES.count
    assert gw.post("/v1/chat/completions", json=CHAT).status_code == 200  # warms the caches
    assert gw.get("/v1/models").status_code == 200
    before = QUERIES.count
    assert before > cold  # the counter does see the gateway's queries: the cold request read key, plan, routes
    for _ in range(9):  # 19 completions in all: under the key's limit of 20 per minute
        assert gw.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert gw.post("/v1/chat/completions", json={**CHAT, "stream": True}).status_code == 200
    assert gw.get("/v1/models").status_code == 200
    assert QUERIES.count == before, QUERIES.statements[before:]


def test_nothing_internal_leaks_in_responses(gw: httpx.Client, catalog: Catalog, sandbox: Sandbox) -> None:
    sandbox.configure(error_rate=1.0, error_status=500)
    response = gw.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 502
    text = response.text + json.dumps(dict(response.headers))
    for secret in (sandbox.url, "127.0.0.1", str(sandbox.port), "session", "sandbox", catalog.secret):
        assert secret not in text
