"""Whose X-Forwarded-For counts, on the app served as production serves it (gunicorn with
portal.serving.PortalUvicornWorker, on loopback): the gateway's invalid-key limiter and Django's sign-in rate limit
count under the connection's peer unless TRUSTED_PROXIES names it.

Before TRUSTED_PROXIES, uvicorn believed the header from any loopback peer: a client on the machine (or behind a
proxy passing the header on) chose a new address per request and was never slowed down.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from apikeys.keyformat import generate_key
from tests.conftest import free_port, session_database_url, start_logged_process, stop_process
from tests.gateway.conftest import reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INVALID_KEY_LIMIT = 5
SIWE_VERIFY_LIMIT = 20  # ACCOUNT_RATE_LIMITS["siwe_verify"], per minute and address


def serve(tmp_path: Path, trusted: str) -> tuple[str, Any]:
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", "portal.asgi:application", "-k", "portal.serving.PortalUvicornWorker"]
    args += ["--workers", "1", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    env = {
        "DATABASE_URL": session_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "GATEWAY_INVALID_KEY_LIMIT": str(INVALID_KEY_LIMIT),
        "TRUSTED_PROXIES": trusted,
    }
    process = start_logged_process(args, port, tmp_path / f"server-{port}.log", env)
    return f"http://127.0.0.1:{port}", process


@pytest.fixture
def untrusted(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    url, process = serve(tmp_path, "")
    yield url
    stop_process(process)
    reset_gateway_caches()  # the counters of the addresses used here, in the shared Redis


@pytest.fixture
def behind_proxy(transactional_db: Any, tmp_path: Path) -> Iterator[str]:
    """The served app behind a proxy on this machine: TRUSTED_PROXIES=127.0.0.1."""
    url, process = serve(tmp_path, "127.0.0.1")
    yield url
    stop_process(process)
    reset_gateway_caches()


def invalid_key(url: str, forwarded_for: str) -> int:
    response = httpx.get(
        f"{url}/v1/models",
        headers={"Authorization": f"Bearer {generate_key()}", "X-Forwarded-For": forwarded_for},
        timeout=10,
    )
    return response.status_code


def siwe_verify(client: httpx.Client, forwarded_for: str) -> int:
    response = client.post(
        "/accounts/siwe/verify",
        content=json.dumps({"message": "forged", "signature": "0x00"}),
        headers={
            "Content-Type": "application/json",
            "X-CSRFToken": client.cookies["csrftoken"],
            "X-Forwarded-For": forwarded_for,
        },
    )
    return response.status_code


@contextmanager
def browser(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=10) as client:
        client.get("/accounts/siwe/").raise_for_status()  # the CSRF cookie
        yield client


def test_a_spoofed_forwarded_for_from_a_peer_that_is_no_trusted_proxy_buys_no_more_tries(untrusted: str) -> None:
    statuses = [invalid_key(untrusted, f"203.0.113.{n}") for n in range(INVALID_KEY_LIMIT + 1)]
    assert statuses == [401] * INVALID_KEY_LIMIT + [429]  # all counted under 127.0.0.1, whatever the header said

    with browser(untrusted) as client:
        sign_ins = [siwe_verify(client, f"198.51.100.{n}") for n in range(SIWE_VERIFY_LIMIT + 1)]
    assert sign_ins == [400] * SIWE_VERIFY_LIMIT + [429]


def test_behind_a_trusted_proxy_each_client_it_names_is_counted_on_its_own(behind_proxy: str) -> None:
    statuses = [invalid_key(behind_proxy, "203.0.113.1") for _ in range(INVALID_KEY_LIMIT + 1)]
    assert statuses == [401] * INVALID_KEY_LIMIT + [429]
    assert invalid_key(behind_proxy, "203.0.113.2") == 401  # another client behind the same proxy: not refused
    # What a client put left of the proxy's entry is not believed: this is 203.0.113.1 again.
    assert invalid_key(behind_proxy, "203.0.113.77, 203.0.113.1") == 429

    with browser(behind_proxy) as client:
        sign_ins = [siwe_verify(client, "198.51.100.1") for _ in range(SIWE_VERIFY_LIMIT + 1)]
        assert sign_ins == [400] * SIWE_VERIFY_LIMIT + [429]
        assert siwe_verify(client, "198.51.100.2") == 400
