"""The request log: recent requests with their key, model, outcome, status, tokens, latency and request id; filters
and search by request id; one request's lifecycle; errors explained in the product's words."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from accounts.models import Organization, User
from apikeys.services import apikey_revoke
from metering.ingest import usage_events_write
from metering.ledger import datetime_to_ms
from metering.models import UsageEvent
from tests.factories import issue_key, verified
from tests.metering.events import lifecycle, refusal
from tests.portal_pages.conftest import as_user, record

pytestmark = [pytest.mark.django_db]

LOG = "/orgs/acme/requests/"


def test_the_log_lists_each_request_with_what_happened(org: Organization, member: User, key: Any) -> None:
    record(org, key, ok=1, failed=1, refused=1)
    html = as_user(member).get(LOG).content.decode()
    for event in UsageEvent.objects.all():
        assert f'data-request-id="{event.request_id}"' in html
    ok = UsageEvent.objects.get(outcome="ok")
    row = html.split(f'data-request-id="{ok.request_id}"', 1)[1].split("</tr>", 1)[0]
    assert "ci key" in row and "gpt-oss-20b" in row and ">200<" in row and "12 → 34" in row and "20 ms" in row
    assert "The backend failed while answering" in html  # the error row explains itself when opened
    assert "Your organization&#x27;s allowance was used up" in html


def test_filters_narrow_the_log_and_search_finds_one_request(
    org: Organization, owner: User, member: User, key: Any
) -> None:
    other_key, _ = issue_key(org, owner, name="other key")
    record(org, key, ok=2, failed=1)
    usage_events_write(events=lifecycle(organization_id=org.pk, key_id=other_key.pk, model="big-model"))
    client = as_user(member)
    failed = UsageEvent.objects.get(outcome="backend_error")

    by_outcome = client.get(LOG, {"outcome": "backend_error"}).content.decode()
    assert by_outcome.count("data-request-id=") == 1 and failed.request_id in by_outcome
    by_key = client.get(LOG, {"key": other_key.pk}).content.decode()
    assert by_key.count("data-request-id=") == 1 and "big-model" in by_key
    by_model = client.get(LOG, {"model": "gpt-oss-20b"}).content.decode()
    assert by_model.count("data-request-id=") == 3
    found = client.get(LOG, {"request_id": f"  {failed.request_id} "}).content.decode()
    assert found.count("data-request-id=") == 1 and failed.request_id in found
    nothing = client.get(LOG, {"request_id": "req_nope"}).content.decode()
    assert "No request matches these filters." in nothing


def test_a_filter_that_makes_no_sense_is_a_400_that_says_why(org: Organization, member: User, key: Any) -> None:
    response = as_user(member).get(LOG, {"outcome": "exploded", "key": "abc"})
    assert response.status_code == 400
    assert "These filters are not valid" in response.content.decode()
    swapped = as_user(member).get(LOG, {"outcome": "exploded"}, headers={"HX-Request": "true"})
    assert swapped.status_code == 422 and "These filters are not valid" in swapped.content.decode()


def test_another_organizations_key_is_not_a_filter_choice(
    org: Organization, member: User, outsider: User, key: Any
) -> None:
    from accounts.models import Organization as Org

    elsewhere_key, _ = issue_key(Org.objects.get(slug="elsewhere"), verified(outsider), name="theirs")
    response = as_user(member).get(LOG, {"key": elsewhere_key.pk})
    assert response.status_code == 400 and "theirs" not in response.content.decode()


def test_with_htmx_only_the_results_are_sent(org: Organization, member: User, key: Any) -> None:
    record(org, key, ok=1)
    html = as_user(member).get(LOG, headers={"HX-Request": "true"}).content.decode()
    assert html.lstrip().startswith('<section id="results"') and "<form" not in html


def test_the_detail_shows_the_lifecycle_and_whether_it_counted(org: Organization, member: User, key: Any) -> None:
    record(org, key, ok=1)
    event = UsageEvent.objects.get()
    html = as_user(member).get(f"{LOG}{event.request_id}/").content.decode()
    done = [name for name in ("Accepted", "Forwarded", "Completed", "Recorded") if f"<strong>{name}</strong>" in html]
    assert done == ["Accepted", "Forwarded", "Completed", "Recorded"]
    assert "did not happen" not in html
    assert "It counted against your allowance (1 unit)." in html and "Succeeded." in html


def test_an_error_is_explained_in_the_products_words(org: Organization, member: User, key: Any) -> None:
    record(org, key, failed=1)
    event = UsageEvent.objects.get()
    html = as_user(member).get(f"{LOG}{event.request_id}/").content.decode()
    assert "The backend failed while answering" in html and "The problem was on our side." in html
    assert "What to do:</strong> Retry the request." in html
    assert "requests that fail on our side are given back" in html


def test_a_refused_request_shows_it_never_reached_a_model(org: Organization, member: User, key: Any) -> None:
    usage_events_write(events=[refusal(organization_id=org.pk, key_id=key.pk, outcome="rate_limited")])
    event = UsageEvent.objects.get()
    html = as_user(member).get(f"{LOG}{event.request_id}/").content.decode()
    assert "<strong>Refused</strong>" in html and "<strong>Accepted</strong>" not in html
    assert "This key&#x27;s rate limit was reached" in html and "refused requests never do" in html


def test_a_request_that_never_finished_shows_the_missing_steps(org: Organization, member: User, key: Any) -> None:
    usage_events_write(events=lifecycle(organization_id=org.pk, key_id=key.pk, stages=("accepted",)))
    event = UsageEvent.objects.get()
    html = as_user(member).get(f"{LOG}{event.request_id}/").content.decode()
    assert html.count("did not happen") == 2  # forwarded, completed
    assert "In progress" in as_user(member).get(LOG).content.decode()


def test_an_unknown_request_id_is_404(org: Organization, member: User, key: Any) -> None:
    assert as_user(member).get(f"{LOG}req_does_not_exist/").status_code == 404


def coded(org: Organization, key: Any, outcome: str, code: str, status: int, at_ms: int | None = None) -> str:
    """A refusal as the gateway reports it now, with the code its client was sent; its request id."""
    event = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome=outcome, at_ms=at_ms),
        status_code=status,
        error_code=code,
    )
    assert not usage_events_write(events=[event]).rejected
    return event.request_id


def row_of(html: str, request_id: str) -> str:
    return html.split(f'data-request-id="{request_id}"', 1)[1].split("</tr>", 1)[0]


def test_the_log_tells_a_revoked_key_from_the_keys_rate_limit_and_the_organizations_allowance(
    org: Organization, owner: User, member: User, key: Any
) -> None:
    apikey_revoke(key=key, actor=owner)
    key.refresh_from_db()
    revoked = coded(org, key, "client_error", "key_revoked", 401)
    limited = coded(org, key, "rate_limited", "rate_limit_exceeded", 429)
    quota = coded(org, key, "quota_exhausted", "quota_exhausted", 429)
    client = as_user(member)
    client.cookies["tz"] = "Asia/Tokyo"  # the reader's zone, as base.html sets it
    html = client.get(LOG).content.decode()

    at = key.revoked_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert at.tzinfo is not None and at.utcoffset() != datetime.now(UTC).utcoffset()
    row = row_of(html, revoked)
    assert "<code>key_revoked</code>" in row and "Revoked key." in row
    assert f"It was revoked on {at.day} {at:%b %Y} at {at:%H:%M} (Asia/Tokyo)." in row
    assert "Create a new key on the API keys page" in row
    row = row_of(html, limited)
    assert "<code>rate_limit_exceeded</code>" in row and "This key&#x27;s rate limit was reached." in row
    assert "Your organization&#x27;s allowance was not the cause." in row
    row = row_of(html, quota)
    assert "<code>quota_exhausted</code>" in row and "Your organization&#x27;s allowance was used up." in row
    assert "This key&#x27;s own rate limit was not the cause." in row

    only = client.get(LOG, {"error_code": "rate_limit_exceeded"}).content.decode()
    assert only.count("data-request-id=") == 1 and limited in only
    assert '<option value="rate_limit_exceeded" selected>' in only
    assert client.get(LOG, {"error_code": "nonsense"}).status_code == 400

    detail = client.get(f"{LOG}{revoked}/").content.decode()
    assert "<dt>Error code</dt><dd><code>key_revoked</code></dd>" in detail
    assert '<h2 id="why-title">Revoked key</h2>' in detail and "It was revoked on" in detail


def test_rows_recorded_before_the_ledger_kept_codes_are_still_explained(
    org: Organization, owner: User, member: User, key: Any
) -> None:
    """An older row has an outcome and a status only: a 401 from a key revoked before it is read as a revoked key;
    one the key's state does not explain keeps the sentence that covers every 401."""
    old_401 = coded(org, key, "client_error", "", 401)
    html = as_user(member).get(f"{LOG}{old_401}/").content.decode()
    assert "The API key was not accepted" in html and "<dt>Error code</dt><dd>—</dd>" in html

    apikey_revoke(key=key, actor=owner)
    key.refresh_from_db()
    later_401 = coded(org, key, "client_error", "", 401, at_ms=datetime_to_ms(key.revoked_at) + 1)
    html = as_user(member).get(f"{LOG}{later_401}/").content.decode()
    assert '<h2 id="why-title">Revoked key</h2>' in html
    assert "The API key was not accepted" in as_user(member).get(f"{LOG}{old_401}/").content.decode()
