"""Gateway fixtures: the real gateway over real HTTP, in this process (a server thread) or as worker processes,
in front of the sandbox router, with the catalog the tests need."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from django.conf import settings
from django.db.backends.signals import connection_created

from accounts.models import Organization, User
from billing.models import Plan
from portal.invalidation import publish
from portal.redis import sync_redis
from routing.models import ModelAlias, Protocol, RouterPool, RouterTarget
from tests.conftest import SANDBOX_KEY, Sandbox, free_port, session_database_url, start_process, stop_process
from tests.factories import issue_key, verified

ROUTER_KEY_ENV = "TEST_ROUTER_KEY"
os.environ.setdefault(ROUTER_KEY_ENV, SANDBOX_KEY)


class QueryCounter:
    """Counts SQL statements run on any connection opened in this process (the gateway's included)."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        self.statements.append(sql[:200])
        return execute(sql, params, many, context)


QUERIES = QueryCounter()


def _wrap(sender: Any, connection: Any, **kwargs: Any) -> None:
    if QUERIES not in connection.execute_wrappers:
        connection.execute_wrappers.append(QUERIES)


connection_created.connect(_wrap)


class ServerThread:
    """uvicorn serving portal.asgi in a thread of this process, with lifespan events, on a free port."""

    def __init__(self) -> None:
        from portal.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="httptools",
            lifespan="on",
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway thread did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def gateway_server(django_db_setup: Any, django_db_blocker: Any) -> Iterator[ServerThread]:
    with django_db_blocker.unblock():
        server = ServerThread()
        server.start()
        yield server
        server.stop()
        _close_other_sessions()


def _close_other_sessions() -> None:
    """The server thread's database connections outlive it; end them so the test database can be dropped."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )


def _clear_fast_state() -> None:
    client = sync_redis()
    if client is None:
        return
    for pattern in ("adm:*", "apikey:*", "*{routing-health}*", "usage:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def reset_gateway_caches() -> None:
    """New rows made by a test reach the gateway the way operators' changes do: by invalidation."""
    from gateway.app import gateway

    _clear_fast_state()
    gateway().key_guard.clear()  # the in-process gateway's refused addresses (all tests come from 127.0.0.1)
    publish("routing", "")
    publish("plan", "")
    time.sleep(0.05)  # pub/sub delivery on loopback takes well under a millisecond; this is generous


@dataclass
class Catalog:
    plan: Plan
    pool: RouterPool
    target: RouterTarget
    alias: ModelAlias
    org: Organization
    owner: User
    key_id: int
    secret: str


def make_catalog(sandbox: Sandbox, org: Organization, owner: User, **plan_fields: Any) -> Catalog:
    pool = RouterPool.objects.create(slug="oss-20b", name="OSS 20B")
    target = RouterTarget.objects.create(
        pool=pool,
        name="sandbox-a",
        base_url=sandbox.url,
        protocol=Protocol.CORTENSOR,
        session_id=7,
        api_key_env=ROUTER_KEY_ENV,
        weight=1,
    )
    alias = ModelAlias.objects.create(
        alias="gpt-oss-20b", pool=pool, family="oss", weight=1, upstream_model="gpt-oss-20b"
    )
    fields: dict[str, Any] = {
        "slug": "free",
        "name": "Free",
        "is_default": True,
        "key_rate_requests": 20,
        "key_rate_window_seconds": 60,
        "short_requests": 200,
        "short_window_seconds": 18000,
        "weekly_requests": 1000,
        "weekly_window_seconds": 604800,
        "all_models": False,
    }
    fields.update(plan_fields)
    plan = Plan.objects.create(**fields)
    plan.entitled_models.add(alias)
    key, secret = issue_key(org, verified(owner), name="gateway test")
    reset_gateway_caches()
    return Catalog(plan, pool, target, alias, org, owner, key.pk, secret)  # type: ignore[attr-defined]


@pytest.fixture
def catalog(transactional_db: Any, sandbox: Sandbox, org: Organization, owner: User) -> Catalog:
    return make_catalog(sandbox, org, owner)


@pytest.fixture
def gw(gateway_server: ServerThread, catalog: Catalog) -> Iterator[httpx.Client]:
    """An HTTP client for the in-process gateway, with the catalog's key."""
    with httpx.Client(
        base_url=gateway_server.url, headers={"Authorization": f"Bearer {catalog.secret}"}, timeout=30
    ) as client:
        yield client


class GatewayWorkers:
    """Gateway worker processes (uvicorn, one process each) sharing this test's database and Redis."""

    def __init__(self, count: int, extra_env: dict[str, str] | None = None) -> None:
        env = {
            "DATABASE_URL": session_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            ROUTER_KEY_ENV: SANDBOX_KEY,
            **(extra_env or {}),
        }
        self.ports = [free_port() for _ in range(count)]
        self.processes = [
            start_process(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "portal.asgi:application",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ],
                port,
                env,
            )
            for port in self.ports
        ]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
