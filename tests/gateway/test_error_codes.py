"""Every request the gateway refuses or fails keeps, in its ledger row, the error code its client was sent: a revoked
key is told apart from a typo, a key's rate limit from the organization's allowance, and the request log and
/api/v1/requests say which."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from apikeys.keyformat import generate_key
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from metering.drain import usage_drain
from metering.models import UsageEvent
from tests.conftest import Sandbox
from tests.factories import issue_key
from tests.gateway.conftest import Catalog, ServerThread, reset_gateway_caches
from tests.portal_pages.conftest import as_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def drained(request_ids: list[str], timeout: float = 10.0) -> dict[str, UsageEvent]:
    """The ledger rows of these requests once the drain has recorded them all (fewer if some never come)."""
    deadline = time.monotonic() + timeout
    while True:
        usage_drain()
        rows = {row.request_id: row for row in UsageEvent.objects.filter(request_id__in=request_ids)}
        finished = [row for row in rows.values() if row.stage in ("refused", "completed")]
        if len(finished) == len(request_ids) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def call(url: str, secret: str, body: object = CHAT) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"})


def test_a_revoked_an_expired_and_an_unknown_key_are_told_apart(gateway_server: ServerThread, catalog: Catalog) -> None:
    revoked, revoked_secret = issue_key(catalog.org, catalog.owner, name="revoked")
    expired, expired_secret = issue_key(catalog.org, catalog.owner, name="expired")
    apikey_revoke(key=revoked, actor=catalog.owner)  # type: ignore[arg-type]
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(hours=1))  # type: ignore[attr-defined]
    reset_gateway_caches()

    answers = {
        "revoked": call(gateway_server.url, revoked_secret),
        "expired": call(gateway_server.url, expired_secret),
        "unknown": call(gateway_server.url, generate_key()),
        "ok": call(gateway_server.url, catalog.secret),
    }
    codes = {name: response.json().get("error", {}).get("code", "") for name, response in answers.items()}
    assert codes == {"revoked": "key_revoked", "expired": "key_expired", "unknown": "invalid_api_key", "ok": ""}

    ids = {name: response.headers["x-request-id"] for name, response in answers.items()}
    rows = drained([ids["revoked"], ids["expired"], ids["ok"]])
    assert {name: rows[ids[name]].error_code for name in ("revoked", "expired", "ok")} == {
        "revoked": "key_revoked",
        "expired": "key_expired",
        "ok": "",
    }
    assert (rows[ids["revoked"]].stage, rows[ids["revoked"]].status_code) == ("refused", 401)
    # A key that does not exist is nobody's: its refusal is in no organization's ledger.
    assert not UsageEvent.objects.filter(request_id=ids["unknown"]).exists()

    log = as_user(catalog.owner).get("/orgs/acme/requests/").content.decode()
    revoked_row = log.split(f'data-request-id="{ids["revoked"]}"', 1)[1].split("</tr>", 1)[0]
    assert "<code>key_revoked</code>" in revoked_row and "Revoked key" in revoked_row
    assert "It was revoked on" in revoked_row
    expired_row = log.split(f'data-request-id="{ids["expired"]}"', 1)[1].split("</tr>", 1)[0]
    assert "Expired key" in expired_row and "It expired on" in expired_row


def test_the_keys_rate_limit_is_told_apart_from_the_organizations_allowance(
    gateway_server: ServerThread, catalog: Catalog
) -> None:
    catalog.plan.key_rate_requests = 3
    catalog.plan.short_requests = 4
    catalog.plan.save()
    _, second = issue_key(catalog.org, catalog.owner, name="second")
    reset_gateway_caches()

    first_key = [call(gateway_server.url, catalog.secret) for _ in range(4)]  # 3 fit this key's limit
    second_key = [call(gateway_server.url, second) for _ in range(2)]  # 1 fits what is left of the organization's 4
    assert [r.status_code for r in first_key + second_key] == [200, 200, 200, 429, 200, 429]
    rate_limited, quota = first_key[-1], second_key[-1]
    assert rate_limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert quota.json()["error"]["code"] == "quota_exhausted"

    ids = [rate_limited.headers["x-request-id"], quota.headers["x-request-id"]]
    rows = drained(ids)
    assert [(rows[i].outcome, rows[i].error_code) for i in ids] == [
        ("rate_limited", "rate_limit_exceeded"),
        ("quota_exhausted", "quota_exhausted"),
    ]

    listed = as_user(catalog.owner).get("/api/v1/requests", {"organization": "acme"}).json()["results"]
    by_id = {item["request_id"]: item for item in listed}
    assert by_id[ids[0]]["error_code"] == "rate_limit_exceeded"
    assert by_id[ids[0]]["explanation"]["title"] == "This key's rate limit was reached"
    assert by_id[ids[1]]["error_code"] == "quota_exhausted"
    assert by_id[ids[1]]["explanation"]["title"] == "Your organization's allowance was used up"


def test_bad_requests_and_backend_failures_keep_their_codes(
    gateway_server: ServerThread, catalog: Catalog, sandbox: Sandbox
) -> None:
    answers = {
        "model_not_found": call(gateway_server.url, catalog.secret, {**CHAT, "model": "gpt-9"}),
        "invalid_request": call(gateway_server.url, catalog.secret, {**CHAT, "temperature": 7}),
    }
    sandbox.configure(error_rate=1.0, error_status=500)
    answers["backend_error"] = call(gateway_server.url, catalog.secret)
    sandbox.configure(error_rate=0.0, fail_after_tokens=2)
    with httpx.stream(
        "POST",
        f"{gateway_server.url}/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {catalog.secret}"},
    ) as streamed:
        last = [line for line in streamed.iter_lines() if line.startswith("data: ")][-1]
    assert json.loads(last.removeprefix("data: "))["error"]["code"] == "backend_error"
    for code, response in answers.items():
        assert response.json()["error"]["code"] == code

    ids = {code: response.headers["x-request-id"] for code, response in answers.items()}
    ids["mid-stream"] = streamed.headers["x-request-id"]
    rows = drained(list(ids.values()))
    assert {name: rows[request_id].error_code for name, request_id in ids.items()} == {
        "model_not_found": "model_not_found",
        "invalid_request": "invalid_request",
        "backend_error": "backend_error",
        "mid-stream": "backend_error",  # the error event that ended a stream already under way
    }
    assert rows[ids["backend_error"]].stage == rows[ids["mid-stream"]].stage == "completed"

    found = as_user(catalog.owner).get("/api/v1/requests", {"organization": "acme", "error_code": "backend_error"})
    assert sorted(item["request_id"] for item in found.json()["results"]) == sorted(
        [ids["backend_error"], ids["mid-stream"]]
    )
