"""The request log after real calls through the gateway (a uvicorn worker process, the sandbox router behind it),
drained into the ledger as the Celery worker does. A worker process, not tests/gateway's in-process server: the
gateway keeps one upstream session per process, and a second server in this process would take it over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from metering.drain import usage_drain
from metering.models import UsageEvent
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog, GatewayWorkers, make_catalog
from tests.portal_pages.conftest import as_user

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


@pytest.fixture
def catalog(transactional_db: Any, sandbox: Sandbox, org: Any, owner: Any) -> Catalog:
    return make_catalog(sandbox, org, owner)


@pytest.fixture
def gw(catalog: Catalog) -> Iterator[httpx.Client]:
    workers = GatewayWorkers(1)
    auth = {"Authorization": f"Bearer {catalog.secret}"}
    with httpx.Client(base_url=workers.urls[0], headers=auth, timeout=30) as client:
        yield client
    workers.stop()


def drained(request_ids: list[str], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        usage_drain()
        if UsageEvent.objects.filter(request_id__in=request_ids, recorded_at__isnull=False).count() == len(request_ids):
            return True
        time.sleep(0.05)
    return False


def test_calls_through_the_gateway_show_in_the_log_with_their_errors_explained(
    gw: httpx.Client,
    catalog: Catalog,
) -> None:
    ok = gw.post("/v1/chat/completions", json=CHAT)
    missing = gw.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"})
    assert (ok.status_code, missing.status_code) == (200, 404)
    ids = [ok.headers["x-request-id"], missing.headers["x-request-id"]]
    assert drained(ids)
    html = as_user(catalog.owner).get("/orgs/acme/requests/").content.decode()
    assert all(f'data-request-id="{request_id}"' in html for request_id in ids)
    assert "The model does not exist" in html and "Use a name from the Models page" in html


def test_a_call_with_a_revoked_key_shows_in_the_log(
    gw: httpx.Client,
    catalog: Catalog,
) -> None:
    apikey_revoke(key=ApiKey.objects.get(pk=catalog.key_id), actor=catalog.owner)
    deadline = time.monotonic() + 5
    response: Any = None
    while time.monotonic() < deadline:
        response = gw.post("/v1/chat/completions", json=CHAT)
        if response.status_code == 401:
            break
        time.sleep(0.05)
    assert response is not None and response.status_code == 401
    assert drained([response.headers["x-request-id"]], timeout=3)
    html = as_user(catalog.owner).get("/orgs/acme/requests/").content.decode()
    assert response.headers["x-request-id"] in html
    # Told apart from a mistyped key: the code the client got, and when the key was revoked.
    assert "Revoked key" in html and "<code>key_revoked</code>" in html and "It was revoked on" in html
    assert "Unknown key" not in html
