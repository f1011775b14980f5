"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), against the portal and
gateway served by uvicorn in a process of their own (as production runs them) on this test's database and Redis, in
front of the sandbox router. Mail goes to that process's console, where the tests read it. Screenshots go to
artifacts/screenshots/ (or $BROWSER_ARTIFACTS).

A process rather than a server thread: the gateway keeps one upstream session per process, so a second in-process
server (tests/gateway has one) would take it over from the first."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections

from tests.conftest import ROOT, SANDBOX_KEY, free_port, session_database_url, stop_process, wait_until_listening
from tests.gateway.conftest import ROUTER_KEY_ENV, Catalog, make_catalog

CHROMIUM = "/usr/bin/chromium"
# What CI needs from a browser and no more: no sandbox (root in a container), no GPU, no network of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

if not Path(CHROMIUM).exists():  # scripts/test installs it as root; a developer without it still runs the rest
    pytest.skip(f"no {CHROMIUM}: apt-get install chromium", allow_module_level=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "artifacts" / "screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser(transactional_db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """One Chromium per test, started after the test database is ready and stopped before it is flushed.

    Playwright's sync API keeps its event loop suspended in this thread, which Django's async-safety check takes
    for async code; the tests' own ORM calls are plain synchronous calls, so the check is off while the browser
    runs, and only then (the rest of the suite keeps it: it catches sync ORM calls on the gateway's event loop)."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # The ORM calls made beside Playwright's loop open a connection of their own; close it while still in
        # that context, or it outlives the test database.
        connections.close_all()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Berlin", locale="en-GB")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()
    assert not errors, f"the browser reported errors: {errors}"  # CSP violations and script errors included


class PortalProcess:
    """`uvicorn portal.asgi:application` on a free port; its console (where mail goes) is kept in a file."""

    def __init__(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": session_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            ROUTER_KEY_ENV: SANDBOX_KEY,
            "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,  # the snippets the tests compare with
        }
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.console = tempfile.NamedTemporaryFile(prefix="portal-console-", suffix=".log")  # noqa: SIM115
        args = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--no-access-log", "--log-level", "warning"]
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.console, stderr=subprocess.STDOUT)
        try:
            wait_until_listening(self.port, self.process)
        except RuntimeError:
            self.stop()
            raise

    def mail_link(self, pattern: str) -> str:
        """The newest link matching `pattern` in the mail printed so far."""
        text = Path(self.console.name).read_text(errors="replace").replace("=\n", "")
        links = re.findall(pattern, text)
        assert links, f"no mail with {pattern!r} in the portal's console:\n{text[-3000:]}"
        return str(links[-1])

    def stop(self) -> None:
        stop_process(self.process)
        self.console.close()


@pytest.fixture
def catalog(transactional_db: Any, sandbox: Any, org: Any, owner: Any) -> Catalog:
    """A default Free plan (200 per 5 hours, 1,000 a week) with gpt-oss-20b on the sandbox router."""
    return make_catalog(sandbox, org, owner)


@pytest.fixture
def portal(catalog: Catalog) -> Iterator[PortalProcess]:
    server = PortalProcess()
    yield server
    server.stop()
