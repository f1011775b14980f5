"""No secret reaches the logs: a real server (portal + gateway, Redis, PostgreSQL) at DEBUG level with JSON logs runs
sign-in, key creation on the page and by the API, inference (plain, streamed, refused, failing upstream), and a
drain of the usage stream; then its whole output is searched for every API key it saw, the router key and
SECRET_KEY. The same output shows the JSON lines carry the request ids clients were given."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from accounts.models import Organization, User
from apikeys.keyformat import generate_key
from tests.conftest import ROOT, Sandbox, free_port, session_database_url, start_logged_process, stop_process
from tests.factories import TEST_PASSWORD
from tests.gateway.conftest import ROUTER_KEY_ENV, Catalog, make_catalog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROUTER_KEY = "rk-" + secrets.token_urlsafe(24)
SECRET_KEY = "sk-" + secrets.token_urlsafe(48)
CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


database_url = session_database_url


def server_env() -> dict[str, str]:
    return {
        "DATABASE_URL": database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": SECRET_KEY,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        ROUTER_KEY_ENV: ROUTER_KEY,
    }


@pytest.fixture(autouse=True)
def _fast_passwords() -> None:
    """The server in its own process must check the password with the real hasher: keep it (see conftest.py)."""


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Sandbox]:
    port = free_port()
    process = start_logged_process(
        [sys.executable, "manage.py", "run_sandbox_router", "--port", str(port), "--key", ROUTER_KEY],
        port,
        tmp_path / "sandbox.log",
    )
    sandbox = Sandbox(port)
    sandbox.auth = {"Authorization": f"Bearer {ROUTER_KEY}"}
    yield sandbox
    stop_process(process)


@pytest.fixture
def live_catalog(router: Sandbox, org: Organization, owner: User) -> Catalog:
    return make_catalog(router, org, owner)


@pytest.fixture
def server(live_catalog: Catalog, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    process = start_logged_process(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        port,
        log,
        server_env(),
    )
    yield f"http://127.0.0.1:{port}", log
    stop_process(process)


def sign_in(client: httpx.Client, email: str) -> None:
    page = client.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post(
        "/accounts/login/", data={"login": email, "password": TEST_PASSWORD, "csrfmiddlewaretoken": token.group(1)}
    )
    assert response.status_code == 302, response.text[:500]


def run_flows(base: str, catalog: Catalog, router: Sandbox) -> tuple[list[str], list[str]]:
    """Everything a customer does that touches a secret. Returns (secrets seen, request ids handed out)."""
    seen = [catalog.secret]
    request_ids = []
    auth = {"Authorization": f"Bearer {catalog.secret}"}
    with httpx.Client(base_url=base, timeout=30) as gw:
        for body in (CHAT, {**CHAT, "stream": True}):
            response = gw.post("/v1/chat/completions", json=body, headers=auth)
            assert response.status_code == 200, response.text
            request_ids.append(response.headers["x-request-id"])
        assert gw.post("/v1/completions", json={"model": "gpt-oss-20b", "prompt": "hi"}, headers=auth).is_success
        assert gw.get("/v1/models", headers=auth).status_code == 200
        assert gw.get("/v1/usage", headers=auth).status_code == 200
        unknown = generate_key()  # well formed, never issued
        typo = catalog.secret[:-1] + ("A" if catalog.secret[-1] != "A" else "B")
        seen += [unknown, typo]
        for wrong in (unknown, typo):
            assert gw.get("/v1/models", headers={"Authorization": f"Bearer {wrong}"}).status_code == 401
            assert gw.get("/v1/models", headers={"x-api-key": wrong}).status_code == 401
        router.configure(error_rate=1.0, error_status=500)
        failed = gw.post("/v1/chat/completions", json=CHAT, headers=auth)
        assert failed.status_code == 502, failed.text
        request_ids.append(failed.headers["x-request-id"])
        router.configure(error_rate=0.0)

    with httpx.Client(base_url=base, timeout=30) as browser:
        sign_in(browser, catalog.owner.email)
        page = browser.get(f"/orgs/{catalog.org.slug}/keys/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token is not None
        created = browser.post(
            f"/orgs/{catalog.org.slug}/keys/",
            data={"name": "from the page", "scopes": ["inference", "manage"], "csrfmiddlewaretoken": token.group(1)},
        )
        assert created.status_code == 200, created.text[:500]
        page_secret = re.search(r"ctx_live_[0-9A-Za-z]{49}", created.text)
        assert page_secret is not None
        seen.append(page_secret.group(0))
        # A portal request logs under the id the proxy in front sent (X-Request-ID).
        missing = browser.get("/orgs/acme/keys/999999/", headers={"X-Request-ID": "lb-trace-404"})
        assert missing.status_code == 404
        request_ids.append("lb-trace-404")

        api = {"Authorization": f"Bearer {page_secret.group(0)}"}
        issued = browser.post("/api/v1/keys", json={"name": "from the API"}, headers=api)
        assert issued.status_code == 201, issued.text
        seen.append(issued.json()["secret"])
        rotated = browser.post(f"/api/v1/keys/{issued.json()['id']}/rotate", json={"grace": "none"}, headers=api)
        assert rotated.status_code == 201, rotated.text
        seen.append(rotated.json()["secret"])
        refused = browser.get("/api/v1/keys", headers={"Authorization": f"Bearer {unknown}"})
        assert refused.status_code == 401
    return seen, request_ids


def test_no_key_router_key_or_secret_key_appears_in_any_log_line(
    server: tuple[str, Path], live_catalog: Catalog, router: Sandbox
) -> None:
    base, log = server
    seen, request_ids = run_flows(base, live_catalog, router)
    drain = subprocess.run(
        [sys.executable, "manage.py", "drain_usage"],
        cwd=ROOT,
        env={**os.environ, **server_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert drain.returncode == 0, drain.stderr
    output = log.read_text() + drain.stdout + drain.stderr
    assert len(output.splitlines()) > 20, "the server logged almost nothing: the search below would prove little"

    for secret in seen:
        assert secret not in output, "an API key is in the logs"
        assert secret[len("ctx_live_") : -6] not in output, "the random body of an API key is in the logs"
    assert ROUTER_KEY not in output, "the router key is in the logs"
    assert SECRET_KEY not in output, "SECRET_KEY is in the logs"

    lines = [json.loads(line) for line in log.read_text().splitlines()]  # every line: one object
    logged_ids = {line.get("request_id") for line in lines}
    # The upstream failure and the portal's 404 are logged, each with the id its client was given.
    assert request_ids[2] in logged_ids, request_ids[2]
    assert request_ids[3] in logged_ids, request_ids[3]
