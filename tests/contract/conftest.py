"""Contract fixtures: a live server (portal + gateway, one uvicorn process on this test database and Redis) with a
catalog whose limits are out of the fuzzer's reach, and the schemathesis settings that bound the run.

The server is a process of its own, not tests/gateway's in-process thread: the gateway keeps one state object per
process, and a second in-process server would share it across two event loops."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from schemathesis.config import SchemathesisConfig

from accounts.models import Organization, User
from tests.conftest import SANDBOX_KEY, Sandbox, free_port, session_database_url, start_logged_process, stop_process
from tests.gateway.conftest import ROUTER_KEY_ENV, Catalog, make_catalog


def contract_config(max_examples: int) -> SchemathesisConfig:
    """Bounded so the contract suite stays well under three minutes on two cores: the documents' examples, the
    boundary values of every field (the coverage phase), then `max_examples` generated cases per operation.
    CONTRACT_MAX_EXAMPLES=1000 digs deeper by hand."""
    max_examples = int(os.environ.get("CONTRACT_MAX_EXAMPLES", max_examples))
    return SchemathesisConfig.from_str(f'[generation]\nmax-examples = {max_examples}\ndatabase = "none"\n')


@pytest.fixture(scope="session")
def live_server_url(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    env = {
        "DATABASE_URL": session_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        ROUTER_KEY_ENV: SANDBOX_KEY,
        # The auth checks send many bad keys from 127.0.0.1; the key-scan limit would (rightly) answer them 429
        # before long, and they are here to show each bad key gets its 401.
        "GATEWAY_INVALID_KEY_LIMIT": "1000000",
        "DEBUG": "false",  # as production answers: Django's debug pages are HTML for every path
    }
    port = free_port()
    log = tmp_path_factory.mktemp("contract") / "server.log"
    args = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    with django_db_blocker.unblock():
        process = start_logged_process([*args, "--log-level", "warning"], port, log, env)
        yield f"http://127.0.0.1:{port}"
        stop_process(process)


@pytest.fixture
def contract_catalog(transactional_db: Any, sandbox: Sandbox, org: Organization, owner: User) -> Catalog:
    """The gateway's test catalog with limits no fuzzing run reaches, so cases get past admission to the backend."""
    return make_catalog(
        sandbox, org, owner, key_rate_requests=1_000_000, short_requests=1_000_000, weekly_requests=10_000_000
    )


@pytest.fixture
def live_gateway(live_server_url: str, contract_catalog: Catalog) -> Iterator[httpx.Client]:
    """An HTTP client for the live server, with the catalog's inference key."""
    headers = {"Authorization": f"Bearer {contract_catalog.secret}"}
    with httpx.Client(base_url=live_server_url, headers=headers, timeout=30) as client:
        yield client
