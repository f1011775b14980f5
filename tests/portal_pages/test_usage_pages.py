"""The dashboard and the usage page show the admission engine's numbers (the counters the gateway admits against)
and the ledger's totals, the warning from 80% and the used-up state with what to do next."""

from __future__ import annotations

import re
from typing import Any

import pytest

from accounts.models import Organization, User
from billing.admission import get_engine
from billing.allowances import organization_limits, scope_for
from billing.selectors import plan_snapshot_for_organization
from metering.models import UsageEvent
from tests.portal_pages.conftest import as_user, record

pytestmark = [pytest.mark.django_db]


def shown(html: str, allowance: str, field: str) -> str:
    block = html.split(f'data-allowance="{allowance}"', 1)[1]
    match = re.search(rf"<[^>]* data-{field}>([^<]*)<", block)
    assert match, f"no {field} for {allowance}"
    return match.group(1).strip()


def engine_status(org: Organization) -> dict[str, Any]:
    limits = organization_limits(plan=plan_snapshot_for_organization(organization_id=org.pk))
    return {state.name: state for state in get_engine().status_sync(scope=scope_for(org.pk), limits=limits)}


@pytest.mark.parametrize("url", ["/orgs/acme/usage/", "/orgs/acme/dashboard/"])
def test_the_numbers_are_the_admission_engines_and_the_ledgers(
    url: str, org: Organization, member: User, key: Any, counters: str
) -> None:
    record(org, key, ok=6, failed=2, refused=1)  # failed ones are refunded, refused ones never count
    html = as_user(member).get(url).content.decode()

    status = engine_status(org)
    billed = UsageEvent.objects.filter(organization=org, billed=True).count()
    assert status["short"].used == status["weekly"].used == billed == 6
    assert shown(html, "short", "used") == "6" and shown(html, "short", "limit") == "10"
    assert shown(html, "short", "percent") == "60%"
    assert shown(html, "weekly", "used") == "6" and shown(html, "weekly", "limit") == "100"
    assert "Near the limit" not in html and "Allowance used up" not in html


def test_the_weekly_summary_and_breakdowns_come_from_the_ledger(
    org: Organization, member: User, key: Any, counters: str
) -> None:
    record(org, key, ok=4, failed=1, refused=2)
    html = as_user(member).get("/orgs/acme/usage/").content.decode()
    assert re.search(r"data-week-requests>7<", html)  # every request seen, refused ones included
    assert re.search(r"data-week-billed>4 requests \(4 units\)", html)
    assert "ci key" in html and key.masked in html
    assert UsageEvent.objects.filter(organization=org).count() == 7
    assert "What counts: every request the gateway lets through counts once" in html


def test_from_80_percent_the_page_warns(org: Organization, member: User, key: Any, counters: str) -> None:
    record(org, key, ok=7)
    assert "Near the limit" not in as_user(member).get("/orgs/acme/usage/").content.decode()
    record(org, key, ok=1)
    html = as_user(member).get("/orgs/acme/usage/").content.decode()
    assert "Near the limit" in html and "allowance-warning" in html
    assert "Acme has used 80% of its 5-hour allowance." in html
    assert shown(html, "short", "percent") == "80%"


def test_used_up_says_what_happens_now_and_what_to_do(
    org: Organization, owner: User, member: User, key: Any, counters: str
) -> None:
    record(org, key, ok=10)
    assert engine_status(org)["short"].remaining == 0
    owner_page = as_user(owner).get("/orgs/acme/dashboard/").content.decode()
    assert "Allowance used up" in owner_page
    assert "New requests are refused with HTTP 429" in owner_page
    assert re.search(r"The next request fits at <time[^>]*>[^<]+</time> \(in [45] h", owner_page)
    assert 'href="/orgs/acme/plan/">ask for a bigger plan</a>' in owner_page
    member_page = as_user(member).get("/orgs/acme/dashboard/").content.decode()
    assert "ask an owner of Acme for a bigger plan" in member_page


def test_a_plan_that_degrades_names_the_model_that_answers_instead(
    org: Organization, owner: User, key: Any, counters: str, plan: Any, alias: Any
) -> None:
    from routing.models import ModelAlias

    plan.over_limit = "degrade"
    plan.degrade_to = ModelAlias.objects.get(alias="big-model")
    plan.save(update_fields=["over_limit", "degrade_to"])
    record(org, key, ok=10)
    html = as_user(owner).get("/orgs/acme/usage/").content.decode()
    assert "Requests are answered by <code>big-model</code> until it comes back" in html


def test_with_htmx_the_page_sends_only_its_live_part_and_no_cache_keeps_it(
    org: Organization, member: User, key: Any, counters: str
) -> None:
    record(org, key, ok=2)
    response = as_user(member).get("/orgs/acme/usage/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert html.lstrip().startswith('<div id="live"') and "<html" not in html
    assert 'hx-trigger="every 5s"' in html and shown(html, "short", "used") == "2"


def test_reset_times_are_in_the_readers_time_zone(org: Organization, member: User, key: Any, counters: str) -> None:
    record(org, key, ok=1)
    client = as_user(member)
    client.cookies["tz"] = "Asia/Kolkata"
    html = client.get("/orgs/acme/usage/").content.decode()
    assert "Times are in Asia/Kolkata" in html
    assert re.search(r'datetime="[^"]+\+05:30"', html)
    client.cookies["tz"] = "Not/AZone"
    assert "Times are in UTC" in client.get("/orgs/acme/usage/").content.decode()


def test_the_chart_has_a_bar_per_hour_or_day_and_a_table_twin(
    org: Organization, member: User, key: Any, counters: str
) -> None:
    record(org, key, ok=3, failed=1)
    client = as_user(member)
    hourly = client.get("/orgs/acme/usage/").content.decode()
    assert hourly.count('class="chart-bar"') == 24
    assert "4 requests in all; the busiest hour had 4." in hourly
    assert ": 4 requests, 1 not successful</title>" in hourly
    daily = client.get("/orgs/acme/usage/?chart=day").content.decode()
    assert daily.count('class="chart-bar"') == 14 and "per UTC day over the last 14 days" in daily


def test_without_a_plan_the_pages_say_so_instead_of_failing(org: Organization, owner: User) -> None:
    for url in ("/orgs/acme/dashboard/", "/orgs/acme/usage/", "/orgs/acme/models/"):
        response = as_user(owner).get(url)
        assert response.status_code == 200
    assert "has no plan yet" in as_user(owner).get("/orgs/acme/usage/").content.decode()


def test_the_dashboard_counts_keys_and_gives_snippets_for_the_plans_models(
    org: Organization, owner: User, key: Any, counters: str, settings: Any
) -> None:
    html = as_user(owner).get("/orgs/acme/dashboard/").content.decode()
    assert "1 active key." in html
    assert f"curl {settings.PORTAL_BASE_URL}/v1/chat/completions" in html
    assert f'OpenAI(base_url="{settings.PORTAL_BASE_URL}/v1"' in html
    assert '"model": "gpt-oss-20b"' in html
    assert "<code>big-model</code>" not in html  # not on this plan
    assert "Free plan" in html


def test_the_models_page_shows_the_catalog_what_the_plan_includes_and_weights(
    org: Organization, member: User, key: Any, counters: str
) -> None:
    html = as_user(member).get("/orgs/acme/models/").content.decode()
    big = html.split('data-model="big-model"', 1)[1].split("</tr>", 1)[0]
    small = html.split('data-model="gpt-oss-20b"', 1)[1].split("</tr>", 1)[0]
    assert "3 requests" in big and "Not included" in big and "Slow and smart." in big
    assert "1 request<" in small and "Included" in small
