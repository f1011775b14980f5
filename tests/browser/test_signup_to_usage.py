"""The whole path a new customer takes, in a real browser: sign up → verify the email (which signs in) → create a
key → call the gateway with the OpenAI SDK → the open usage page shows the request without a reload → revoke the
key → the next call gets 401 → the request log shows the request. Screenshots of each page go to the artifacts
folder."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openai
import pytest
from django.conf import settings
from playwright.sync_api import expect

from accounts.models import Organization, User
from billing.admission import get_engine
from billing.allowances import scope_for
from metering.drain import usage_drain
from metering.models import UsageEvent
from tests.browser.conftest import PortalProcess
from tests.factories import TEST_PASSWORD
from tests.portal_pages.conftest import record

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAIL = "new.customer@example.com"


def _drain_until(request_id: str, *, completed: bool = True) -> UsageEvent:
    for _ in range(100):
        usage_drain()
        event = UsageEvent.objects.filter(request_id=request_id, recorded_at__isnull=False).first()
        if event is not None and (event.completed_at is not None or not completed):
            return event
    raise AssertionError(f"{request_id} never reached the ledger")


def test_a_new_customer_signs_up_calls_the_api_and_sees_it(
    page: Any, portal: PortalProcess, catalog: Any, artifacts: Path
) -> None:
    base = portal.url

    # Sign up: the page asks to verify the address first (sign-in waits for it).
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Email").fill(EMAIL)
    page.locator("input[name=password1]").fill(TEST_PASSWORD)
    page.locator("input[name=password2]").fill(TEST_PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/accounts/confirm-email/$"))
    assert "Confirmation email sent to new.customer@example.com" in page.inner_text("main")

    # Verify the email with the link from the outbox: signs in and lands on the dashboard of a new personal
    # organization.
    page.goto(portal.mail_link(r"https?://\S+/accounts/confirm-email/\S+/"))
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/orgs/[-\w]+/dashboard/$"))
    slug = page.url.rstrip("/").split("/")[-2]
    user = User.objects.get(email=EMAIL)
    organization = Organization.objects.get(slug=slug)
    assert organization.memberships.filter(user=user).exists()
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert "Free plan" in page.inner_text("main")

    # Create a key; the secret is shown once.
    page.goto(f"{base}/orgs/{slug}/keys/")
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text().strip()
    assert secret.startswith("ctx_live_")
    page.screenshot(path=artifacts / "key-panel.png", full_page=True)

    # Keep the usage page open, then call the gateway with the OpenAI SDK.
    page.goto(f"{base}/orgs/{slug}/usage/")
    short = page.locator("[data-allowance=short] [data-used]")
    assert short.inner_text() == "0"
    page.evaluate("window.__no_reload = true")
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=secret, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "hello from the browser test"}], max_tokens=5
    )
    ok_id = reply.headers["x-request-id"]
    assert reply.parse().choices[0].message.content
    _drain_until(ok_id)

    # The page updates itself (htmx every few seconds): the same document, new numbers.
    expect(short).to_have_text("1", timeout=20_000)
    expect(page.locator("[data-week-requests]")).to_have_text("1", timeout=20_000)
    assert page.evaluate("window.__no_reload") is True
    states = get_engine().status_sync(scope=scope_for(organization.pk), limits=_org_limits(organization))
    assert [state.used for state in states] == [1, 1]
    page.screenshot(path=artifacts / "usage-normal.png", full_page=True)
    page.goto(f"{base}/orgs/{slug}/dashboard/")
    assert page.locator("[data-key-count]").inner_text() == "1 active key."
    page.screenshot(path=artifacts / "dashboard.png", full_page=True)

    # Revoke the key on the keys page; the next call is refused with 401.
    page.goto(f"{base}/orgs/{slug}/keys/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Revoke").click()
    page.get_by_text("Revoked laptop").wait_for()
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="gpt-oss-20b", messages=[{"role": "user", "content": "again"}])
    assert refused.value.status_code == 401
    assert refused.value.code == "key_revoked"
    refused_id = refused.value.response.headers["x-request-id"]
    assert _drain_until(refused_id, completed=False).status_code == 401

    # The request log shows both requests; the refused one explains itself; the answered one's detail page shows
    # the whole lifecycle.
    page.goto(f"{base}/orgs/{slug}/requests/")
    refused_row = page.locator(f"tr[data-request-id='{refused_id}']")
    assert "401" in refused_row.inner_text() and "key_revoked" in refused_row.inner_text()
    row = page.locator(f"tr[data-request-id='{ok_id}']")
    assert "OK" in row.inner_text() and "200" in row.inner_text()
    row.get_by_role("link", name=ok_id).click()
    # The click navigates: wait for the detail page rather than reading the list page that is still shown.
    steps = page.locator(".lifecycle li.step-done strong")
    expect(steps).to_have_text(["Accepted", "Forwarded", "Completed", "Recorded"], timeout=10_000)

    # Dashboard: the key is gone from the active count; the quick start names this portal's URL and the plan's model.
    page.goto(f"{base}/orgs/{slug}/dashboard/")
    text = page.inner_text("main")
    assert "No active keys yet" in text, text
    assert f"{settings.PORTAL_BASE_URL}/v1/chat/completions" in text
    assert "gpt-oss-20b" in text


def _org_limits(organization: Organization) -> Any:
    from billing.allowances import organization_limits
    from billing.selectors import plan_snapshot_for_organization

    return organization_limits(plan=plan_snapshot_for_organization(organization_id=organization.pk))


def test_the_usage_page_warns_near_the_limit_and_says_what_to_do_when_used_up(
    page: Any, portal: PortalProcess, catalog: Any, org: Organization, owner: User, artifacts: Path
) -> None:
    from apikeys.models import ApiKey

    key = ApiKey.objects.get(pk=catalog.key_id)
    get_engine().reset_sync(scope=scope_for(org.pk))
    page.goto(f"{portal.url}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/orgs/acme/dashboard/$"))

    record(org, key, ok=165, failed=3)  # 165 of 200 in the 5-hour window: 82%
    page.goto(f"{portal.url}/orgs/acme/usage/")
    notice = page.locator("#allowance-notice")
    assert "Near the limit" in notice.inner_text()
    assert page.locator("[data-allowance=short] [data-percent]").inner_text() == "82%"
    page.screenshot(path=artifacts / "usage-warning.png", full_page=True)

    record(org, key, ok=35, refused=2)  # 200 of 200
    expect(page.locator("[data-allowance=short] [data-used]")).to_have_text("200", timeout=20_000)
    text = notice.inner_text()
    assert "Allowance used up" in text and "refused with HTTP 429" in text
    assert "wait until then" in text and "ask for a bigger plan" in text
    short_state = get_engine().status_sync(scope=scope_for(org.pk), limits=_org_limits(org))[0]
    assert (short_state.used, short_state.remaining) == (200, 0)
    assert short_state.next_free_at_ms is not None
    fits = datetime.fromtimestamp(short_state.next_free_at_ms / 1000, ZoneInfo("Europe/Berlin"))  # the browser's zone
    assert f"The next request fits at {fits:%a} {fits.day} {fits:%b, %H:%M} (in " in text, text
    page.screenshot(path=artifacts / "usage-exhausted.png", full_page=True)

    # Phone width: nothing runs off the side of any page (wide tables scroll inside their own box).
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("dashboard/", "requests/", "models/", "keys/", "plan/", "usage/"):
        page.goto(f"{portal.url}/orgs/acme/{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, path
    page.screenshot(path=artifacts / "usage-phone.png", full_page=True)
    get_engine().reset_sync(scope=scope_for(org.pk))


# Every visible form control on the page has a name a screen reader can say: a <label>, aria-label or aria-labelledby.
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length))
  .filter((el) => !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map((el) => el.name || el.id || el.outerHTML.slice(0, 80))"""


def test_the_pages_work_from_the_keyboard_and_every_control_has_a_label(
    page: Any, portal: PortalProcess, catalog: Any, org: Organization, owner: User
) -> None:
    from apikeys.models import ApiKey

    base = portal.url
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.keyboard.press("Enter")  # the form submits from the keyboard
    page.wait_for_url(re.compile(r"/orgs/acme/dashboard/$"))
    record(org, ApiKey.objects.get(pk=catalog.key_id), ok=2, failed=1)
    event = UsageEvent.objects.filter(organization=org, outcome="backend_error").get()

    for path in ("dashboard/", "usage/", "requests/", f"requests/{event.request_id}/", "models/", "keys/", "plan/"):
        page.goto(f"{base}/orgs/acme/{path}")
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, path
        page.keyboard.press("Tab")  # the first stop is the skip link, and it leads to the content
        assert page.evaluate("document.activeElement.textContent") == "Skip to content", path

    # The request log's error explanation opens from the keyboard.
    page.goto(f"{base}/orgs/acme/requests/")
    summary = page.locator(f"tr[data-request-id='{event.request_id}'] details summary")
    summary.focus()
    page.keyboard.press("Enter")
    row = page.locator(f"tr[data-request-id='{event.request_id}']")
    expect(row.locator("details")).to_have_attribute("open", "")
    assert "The backend failed while answering" in row.inner_text()

    # Choosing an outcome narrows the log in place (htmx), and the address bar keeps the filter.
    page.evaluate("window.__no_reload = true")
    page.get_by_label("Outcome").select_option("ok")
    expect(page.locator("tr[data-request-id]")).to_have_count(2)
    assert "outcome=ok" in page.url and page.evaluate("window.__no_reload") is True
    page.get_by_label("Request id").fill(event.request_id)
    page.get_by_label("Outcome").select_option("")
    expect(page.locator("tr[data-request-id]")).to_have_count(1)
    get_engine().reset_sync(scope=scope_for(org.pk))
