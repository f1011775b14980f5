"""CSRF: every URL pattern refuses a cookie-authenticated POST without the token, every state-changing probe of the
matrix goes through with it, and every form the portal renders carries it."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import resolve

from tests.security.conftest import World
from tests.security.urlmatrix import ANON, OK, OWNER, Pattern, probes_for, url_patterns

PATTERNS = list(url_patterns())
SAFE = ("GET", "HEAD", "OPTIONS")
STATE_CHANGING = [
    (pattern, probe)
    for pattern in PATTERNS
    for probe in (probes_for(pattern) or ())
    if probe.method not in SAFE and probe.expect[OWNER] is OK
]


def csrf_client(world: World, persona: str) -> Client:
    client = Client(enforce_csrf_checks=True)
    user = world.users[persona]
    if user is not None:
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def is_csrf_refusal(status: int, body: bytes) -> bool:
    return status == 403 and b"CSRF" in body


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.key for p in PATTERNS])
def test_a_post_without_the_token_is_refused(pattern: Pattern, world: World) -> None:
    probes = probes_for(pattern)
    assert probes is not None
    url = probes[0].url(world)
    rest_framework_view = hasattr(resolve(url.split("?")[0]).func, "cls")
    for persona in (OWNER, ANON):
        response = csrf_client(world, persona).post(url, {"name": "forged"})
        if rest_framework_view:
            # DRF checks the token itself, for session callers only (a key in a header cannot be forged by a page);
            # an anonymous caller has no cookie to abuse and is asked for credentials or refused the method.
            allowed = (403,) if persona == OWNER else (401, 405)
            assert response.status_code in allowed, (url, persona, response.status_code)
            continue
        assert is_csrf_refusal(response.status_code, response.content), (
            f"POST {url} as {persona} without a CSRF token answered {response.status_code}"
        )


@pytest.mark.parametrize(
    ("pattern", "probe"), STATE_CHANGING, ids=[f"{p.key}-{probe.method}" for p, probe in STATE_CHANGING]
)
def test_the_same_post_with_the_token_is_not_refused_for_csrf(pattern: Pattern, probe: object, world: World) -> None:
    """The control: the 403 above is the missing token, not the view refusing everyone."""
    client = csrf_client(world, OWNER)
    client.get("/accounts/email/")  # any page that renders a form sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    url = probe.url(world)  # type: ignore[attr-defined]
    data = probe.data(world)  # type: ignore[attr-defined]
    if probe.json:  # type: ignore[attr-defined]
        import json

        response = client.generic(
            probe.method,  # type: ignore[attr-defined]
            url,
            json.dumps(data),
            content_type="application/json",
            headers={"X-CSRFToken": token},
        )
    else:
        response = client.generic(
            probe.method,  # type: ignore[attr-defined]
            url,
            "&".join(f"{k}={v}" for k, v in data.items()),
            content_type="application/x-www-form-urlencoded",
            headers={"X-CSRFToken": token},
        )
    assert not is_csrf_refusal(response.status_code, response.content), url
    assert response.status_code < 500


class FormFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self._open: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self._open = {
                "method": (values.get("method") or "get").lower(),
                "action": values.get("action"),
                "csrf": False,
            }
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and values.get("name") == "csrfmiddlewaretoken":
            self._open["csrf"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def test_every_post_form_on_every_page_carries_the_token(world: World) -> None:
    """Renders every page an owner can open and reads its forms: a POST form without the hidden token would be
    refused by the middleware, and one posting to another site would be a leak."""
    client = world.client(OWNER)
    seen = 0
    for pattern in PATTERNS:
        if pattern.namespace == "admin":
            continue
        for probe in probes_for(pattern) or ():
            if probe.method != "GET" or probe.expect[OWNER] is not OK:
                continue
            response = client.get(probe.url(world), follow=True)
            if "text/html" not in response.headers.get("Content-Type", ""):
                continue
            finder = FormFinder()
            finder.feed(response.content.decode())
            for form in finder.forms:
                if form["method"] == "post":
                    seen += 1
                    assert form["csrf"], f"a POST form on {probe.url(world)} (action {form['action']}) has no token"
                    action = str(form["action"] or "")
                    assert not action.startswith(("http:", "https:", "//")), action
    assert seen >= 10, f"only {seen} POST forms found: the walk is not reaching the pages"


def test_htmx_requests_send_the_token_from_the_body_element(world: World) -> None:
    response = world.client(OWNER).get(f"/orgs/{world.org.slug}/keys/")
    token = response.context["csrf_token"]
    assert f'hx-headers=\'{{"X-CSRFToken": "{token}"}}\'' in response.content.decode()
