"""Who may use which URL: every pattern of the URL conf, five personas each, against the matrix in urlmatrix.py."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.http import HttpResponse

from tests.security.conftest import World
from tests.security.urlmatrix import (
    MATRIX,
    PERSONAS,
    Outcome,
    Pattern,
    Probe,
    probes_for,
    url_patterns,
)

PATTERNS = list(url_patterns())


def test_every_url_pattern_has_an_entry_in_the_matrix() -> None:
    missing = [f"{p.key} ({p.route})" for p in PATTERNS if probes_for(p) is None]
    assert not missing, "add these URL patterns to tests/security/urlmatrix.py MATRIX:\n" + "\n".join(missing)


def test_the_matrix_names_no_pattern_that_is_gone() -> None:
    stale = set(MATRIX) - {p.key for p in PATTERNS}
    assert not stale, f"these matrix entries match no URL pattern any more: {sorted(stale)}"


def _location(response: HttpResponse) -> str:
    return str(response.headers.get("Location", ""))


def outcome_of(response: HttpResponse, probe: Probe) -> Outcome | str:
    status = response.status_code
    if probe.follow and getattr(response, "redirect_chain", None):
        last = response.redirect_chain[-1][0]
        if last.startswith("/admin/login/"):
            return Outcome.ADMIN_LOGIN
    if status in (301, 302, 303, 307):
        location = _location(response)
        if location.startswith("/accounts/login/"):
            return Outcome.LOGIN
        if location.startswith("/admin/login/"):
            return Outcome.ADMIN_LOGIN
        return Outcome.OK
    if status == 404:
        return Outcome.NOT_FOUND
    if status == 405:
        return Outcome.NOT_ALLOWED
    if probe.json and status == 401:
        return Outcome.API_REFUSED
    if status == 403:
        return Outcome.FORBIDDEN
    if status < 400 or status in (400, 422):  # a refused form or body: the view ran for this persona
        return Outcome.OK
    return f"HTTP {status}"


def run(world: World, persona: str, probe: Probe) -> HttpResponse:
    client = world.client(persona)
    url = probe.url(world)
    data = probe.data(world)
    # Each probe runs in a savepoint rolled back afterwards: a revoke or a removal must not change what the next
    # persona or probe sees.
    with transaction.atomic():
        if probe.json:
            body = json.dumps(data) if probe.method not in ("GET", "HEAD") else None
            response = client.generic(
                probe.method, url, data=body or "", content_type="application/json", follow=probe.follow
            )
        elif probe.method == "GET":
            response = client.get(url, follow=probe.follow)
        else:
            response = client.generic(
                probe.method,
                url,
                data="&".join(f"{k}={v}" for k, v in data.items()),
                content_type="application/x-www-form-urlencoded",
                follow=probe.follow,
            )
        transaction.set_rollback(True)
    return response


@pytest.mark.parametrize("pattern", PATTERNS, ids=[p.key for p in PATTERNS])
def test_each_persona_gets_what_the_matrix_says(pattern: Pattern, world: World) -> None:
    probes = probes_for(pattern)
    assert probes is not None, f"{pattern.key} is not in the matrix"
    wrong = []
    for probe in probes:
        for persona in PERSONAS:
            response = run(world, persona, probe)
            got = outcome_of(response, probe)
            want = probe.expect[persona]
            assert response.status_code < 500, f"{probe.method} {probe.url(world)} as {persona}: a server error"
            if got != want:
                wrong.append(
                    f"{probe.method} {probe.url(world)} as {persona}: wanted {want.value}, got "
                    f"{got.value if isinstance(got, Outcome) else got} ({response.status_code} {_location(response)})"
                )
    assert not wrong, "\n".join(wrong)


def test_staff_do_get_into_the_admin_the_matrix_keeps_customers_out_of(db: None) -> None:
    from django.test import Client

    from tests.factories import OperatorFactory

    staff = OperatorFactory()
    client = Client()
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    response = client.get("/admin/apikeys/apikey/")
    assert response.status_code == 200
    assert b"Cortensor Portal operations" in response.content
