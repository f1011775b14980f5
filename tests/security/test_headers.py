"""Security headers and the Content Security Policy on every portal page, and the cookie flags of production."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client, override_settings

from tests.conftest import ROOT
from tests.factories import TEST_PASSWORD, verified
from tests.portal.test_settings import PRODUCTION, manage
from tests.security.conftest import World
from tests.security.urlmatrix import ANON, OK, OWNER, probes_for, url_patterns


class Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str | None] = []  # the nonce of each inline script
        self.sources: list[str] = []
        self.inline_handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and values.get("type", "text/javascript") in ("text/javascript", "module", ""):
            # Data blocks (type="application/json") are never run, so the policy does not apply to them.
            if values.get("src"):
                self.sources.append(str(values["src"]))
            else:
                self.inline.append(values.get("nonce"))
        for name, _ in attrs:
            if name.startswith("on"):
                self.inline_handlers.append(f"<{tag} {name}>")


def html_pages(world: World) -> list[tuple[str, str]]:
    """(persona, url) of every page of the portal that persona opens with a 200 HTML answer (admin aside)."""
    pages = []
    for pattern in url_patterns():
        if pattern.namespace == "admin":
            continue
        for probe in probes_for(pattern) or ():
            if probe.method == "GET" and not probe.json:
                for persona in (OWNER, ANON):
                    if probe.expect[persona] is OK:
                        pages.append((persona, probe.url(world)))
    return pages


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


def test_every_page_carries_the_security_headers_and_a_strict_policy(world: World) -> None:
    checked = 0
    for persona, url in html_pages(world):
        response = world.client(persona).get(url)
        if response.status_code != 200 or "text/html" not in response.headers.get("Content-Type", ""):
            continue
        checked += 1
        where = f"{url} as {persona}"
        headers = response.headers
        assert headers["X-Frame-Options"] == "DENY", where
        assert headers["X-Content-Type-Options"] == "nosniff", where
        assert headers["Referrer-Policy"] == "same-origin", where
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin", where
        policy = directives(headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"], where
        assert policy["object-src"] == ["'none'"], where
        assert policy["frame-ancestors"] == ["'none'"], where
        assert policy["form-action"] == ["'self'"], where
        assert policy["base-uri"] == ["'self'"], where
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], where
        nonce = next(word for word in policy["script-src"] if word.startswith("'nonce-"))[7:-1]
        scripts = Scripts()
        scripts.feed(response.content.decode())
        # An inline script without this response's nonce would be blocked in the browser (a broken page), and a
        # script from another origin would be outside the policy: neither may ship.
        assert all(n == nonce for n in scripts.inline), f"{where}: inline script without the nonce"
        assert all(src.startswith("/static/") for src in scripts.sources), f"{where}: {scripts.sources}"
        assert not scripts.inline_handlers, f"{where}: inline event handlers {scripts.inline_handlers}"
    assert checked >= 15, f"only {checked} pages checked"


def test_the_api_reference_relaxes_styles_only(world: World) -> None:
    response = Client().get("/api/docs/")
    policy = directives(response.headers["Content-Security-Policy"])
    assert "'unsafe-inline'" in policy["style-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"]


def production_settings(*names: str) -> dict[str, Any]:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n, None) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


COOKIE_SETTINGS = (
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SAMESITE",
    "SECURE_HSTS_SECONDS",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
)


@pytest.fixture(scope="module")
def production() -> dict[str, Any]:
    values = production_settings(*COOKIE_SETTINGS)
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


def test_production_cookies_are_https_only_and_hidden_from_scripts(production: dict[str, Any], owner: Any) -> None:
    """Signs in through the real login form with the production profile's values, over HTTPS behind the proxy."""
    verified(owner)  # an unverified address is sent to verify it instead of signing in
    with override_settings(**production):
        client = Client()
        page = client.get("/accounts/login/", secure=True)
        assert page.status_code == 200
        csrf = page.cookies["csrftoken"]
        assert csrf["secure"] and csrf["samesite"] == "Lax"
        response = client.post(
            "/accounts/login/",
            {"login": owner.email, "password": TEST_PASSWORD, "csrfmiddlewaretoken": csrf.value},
            secure=True,
        )
        assert response.status_code == 302
        assert response["Location"] != "/accounts/confirm-email/"
        session = response.cookies["sessionid"]
        assert session["secure"], "the session cookie must never travel over plain HTTP"
        assert session["httponly"], "scripts must not read the session cookie"
        assert session["samesite"] == "Lax"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def test_production_redirects_plain_http_except_the_health_probes(production: dict[str, Any], db: None) -> None:
    with override_settings(**production, SECURE_REDIRECT_EXEMPT=[r"^healthz$", r"^readyz$"]):
        client = Client()
        redirected = client.get("/accounts/login/")
        assert redirected.status_code == 301
        assert redirected.headers["Location"].startswith("https://")
        assert client.get("/healthz").status_code == 200
        assert client.get("/accounts/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200


def test_check_deploy_names_no_warning_even_at_the_strictest_level() -> None:
    """tests/portal/test_settings.py runs `check --deploy --fail-level WARNING`; this adds the INFO level."""
    result = manage("check", "--deploy", "--fail-level", "INFO", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"System check identified no issues", result.stdout)
