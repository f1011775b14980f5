"""Shared fixtures: personas, a live sandbox router, and helpers to run things over real HTTP."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from accounts.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_KEY = "test-router-key"


@contextlib.contextmanager
def json_log_lines(logger_name: str, level: int | None = None) -> Iterator[io.StringIO]:
    """One logger's lines, formatted as production formats them (JSON, with the request id), into a buffer."""
    from portal.logs import JsonFormatter, RequestIdFilter

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    previous = logger.level
    if level is not None:
        logger.setLevel(level)
    try:
        yield buffer
    finally:
        logger.setLevel(previous)
        logger.removeHandler(handler)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.05) -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout` seconds. Tests wait on the thing a
    fixed sleep would stand for (a row written, a task queued, a counter published), never on a guess of how long
    it takes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


def start_process(args: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until_listening(port, process)
    except RuntimeError:
        process.kill()
        _, err = process.communicate(timeout=5)
        raise RuntimeError(err.decode(errors="replace")[-2000:]) from None
    return process


def start_logged_process(
    args: list[str], port: int | None, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Like start_process, with stdout and stderr in the file `log`: a server logging a lot (DEBUG, or many refused
    requests) would block on a pipe nobody reads."""
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=handle, stderr=subprocess.STDOUT
        )
    if port is not None:
        try:
            wait_until_listening(port, process)
        except RuntimeError:
            process.kill()
            process.wait(timeout=5)
            raise RuntimeError(log.read_text(errors="replace")[-3000:]) from None
    return process


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def session_database_url() -> str:
    """This test session's database as a URL, for the servers and commands the tests start in other processes."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Sandbox:
    """A sandbox router running in its own process, with helpers to change its faults."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.key = SANDBOX_KEY
        self.auth = {"Authorization": f"Bearer {SANDBOX_KEY}"}

    def configure(self, **changes: object) -> dict[str, object]:
        response = httpx.post(f"{self.url}/_sandbox/config", json=changes, headers=self.auth, timeout=5)
        response.raise_for_status()
        return dict(response.json())

    def stats(self) -> dict[str, object]:
        return dict(httpx.get(f"{self.url}/_sandbox/stats", headers=self.auth, timeout=5).json())

    def reset(self) -> None:
        self.configure(
            latency_ms=0.0,
            token_delay_ms=0.0,
            error_rate=0.0,
            error_status=500,
            error_message="Injected failure.",
            hang=False,
            fail_after_tokens=-1,
            fail_mode="error",
            reset_stats=True,
        )


@pytest.fixture(scope="session")
def sandbox_process() -> Iterator[Sandbox]:
    port = free_port()
    process = start_process(
        [sys.executable, "manage.py", "run_sandbox_router", "--port", str(port), "--key", SANDBOX_KEY], port
    )
    yield Sandbox(port)
    stop_process(process)


@pytest.fixture
def sandbox(sandbox_process: Sandbox) -> Iterator[Sandbox]:
    """The shared sandbox router, with no faults at the start and the end of each test."""
    sandbox_process.reset()
    yield sandbox_process
    sandbox_process.reset()


@pytest.fixture(autouse=True)
def _clean_cache() -> Iterator[None]:
    """Each test starts with an empty Django cache (allauth's rate limits live there). Only the cache's own
    prefixed keys are deleted, never the whole Redis database other tests' state shares."""
    from django.core.cache import cache

    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()
    yield


@pytest.fixture
def org(db):  # type: ignore[no-untyped-def]
    """The organization the personas below belong to (except the outsider)."""
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def owner(org):  # type: ignore[no-untyped-def]
    return MembershipFactory(
        organization=org, user=UserFactory(email="owner@example.com", name="Olive Owner"), role=Role.OWNER
    ).user


@pytest.fixture
def admin_user(org):  # type: ignore[no-untyped-def]
    return MembershipFactory(
        organization=org, user=UserFactory(email="admin@example.com", name="Ada Admin"), role=Role.ADMIN
    ).user


@pytest.fixture
def member(org):  # type: ignore[no-untyped-def]
    return MembershipFactory(
        organization=org, user=UserFactory(email="member@example.com", name="Mel Member"), role=Role.MEMBER
    ).user


@pytest.fixture
def outsider(db):  # type: ignore[no-untyped-def]
    """Owner of another organization: sees nothing of Acme's."""
    other = OrganizationFactory(name="Elsewhere", slug="elsewhere")
    return MembershipFactory(
        organization=other, user=UserFactory(email="outsider@example.com", name="Otto Outsider"), role=Role.OWNER
    ).user


@pytest.fixture
def counters(org):  # type: ignore[no-untyped-def]
    """The organization's admission counters, empty at the start and dropped at the end (other tests' orgs share
    ids)."""
    from billing.admission import get_engine
    from billing.allowances import scope_for

    scope = scope_for(org.pk)
    get_engine().reset_sync(scope=scope)
    yield scope
    get_engine().reset_sync(scope=scope)
