"""Browser fixtures: Debian's Chromium driven by Playwright (never a downloaded browser), against the portal and
gateway served for real by uvicorn in this process (tests/gateway/conftest.py's server), in front of the sandbox
router. Screenshots go to artifacts/screenshots/ (or $BROWSER_ARTIFACTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.gateway.conftest import gateway_server  # noqa: F401  (the live portal + gateway, shared)

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
