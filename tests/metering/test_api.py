"""/api/v1/usage and /api/v1/requests: organization-scoped, numbers equal to the admission engine and the roll-ups,
filters and pagination on the request log."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke
from metering.ingest import usage_events_ingest
from metering.ledger import datetime_to_ms
from tests.factories import issue_key
from tests.metering.events import lifecycle, refusal
from tests.metering.helpers import admit, status

pytestmark = [pytest.mark.django_db]


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def traffic(org: Any, key: ApiKey, owner: Any, counters: str) -> dict[str, Any]:
    """Yesterday and today: two keys, two models, an error, a refusal; every admitted request booked in the engine."""
    other_key, _ = issue_key(org, owner, name="batch jobs")
    now = timezone.now()
    yesterday = datetime_to_ms(now - timedelta(days=1))
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    today = datetime_to_ms(max(now - timedelta(minutes=30), midnight))  # never yesterday, whenever the test runs
    plan: list[tuple[Any, int, str, str]] = [
        (key, yesterday, "gpt-oss-20b", "ok"),
        (key, yesterday + 1000, "gpt-oss-20b", "ok"),
        (key, today, "gpt-oss-20b", "ok"),
        (key, today + 1000, "gemma-3", "client_cancelled"),
        (other_key, today + 2000, "gemma-3", "ok"),
    ]
    ids = []
    for used_key, at, model, outcome in plan:
        admit(organization_id=org.pk, key_id=used_key.pk, at_ms=at)
        events = lifecycle(organization_id=org.pk, key_id=used_key.pk, at_ms=at, model=model, outcome=outcome)
        usage_events_ingest(events=events)
        ids.append(events[0].request_id)
    refused = refusal(organization_id=org.pk, key_id=key.pk, at_ms=today + 3000, outcome="rate_limited")
    usage_events_ingest(events=[refused])
    return {"key": key, "other_key": other_key, "ids": ids, "refused": refused.request_id}


def test_usage_shows_the_engines_allowance_state_and_the_roll_ups(
    org: Any, owner: Any, traffic: dict[str, Any]
) -> None:
    body = session(owner).get("/api/v1/usage", {"organization": "acme", "days": 7}).json()

    engine = status(organization_id=org.pk, key_id=traffic["key"].pk, now_ms=datetime_to_ms(timezone.now()))[1:]
    assert body["plan"] == {"slug": "free", "name": "Free"}
    assert [(a["name"], a["limit"], a["used"], a["remaining"]) for a in body["allowances"]] == [
        (s.name, s.limit, s.used, s.remaining)  # type: ignore[attr-defined]
        for s in engine
    ]
    assert [a["used"] for a in body["allowances"]] == [3, 5]  # yesterday's two are outside the 5-hour window
    weekly = body["allowances"][1]
    assert datetime.fromisoformat(weekly["resets_at"]) > timezone.now() + timedelta(days=5)
    assert body["totals"]["requests"] == 6
    assert body["totals"]["billed_requests"] == 5
    assert body["totals"]["outcomes"]["ok"] == 4
    assert body["totals"]["outcomes"]["rate_limited"] == 1
    assert body["totals"]["completion_tokens"] == 5 * 34
    assert len(body["by_day"]) == 7
    today = datetime.now(UTC).date()
    per_day = {d["day"]: d["requests"] for d in body["by_day"] if d["requests"]}
    assert per_day == {(today - timedelta(days=1)).isoformat(): 2, today.isoformat(): 4}
    assert [(k["name"], k["requests"]) for k in body["by_key"]] == [("metering test", 5), ("batch jobs", 1)]
    assert [(m["model"], m["requests"], m["billed_requests"]) for m in body["by_model"]] == [
        ("gpt-oss-20b", 4, 3),
        ("gemma-3", 2, 2),
    ]


def test_usage_with_a_manage_key_reads_the_keys_own_organization(org: Any, owner: Any, traffic: dict[str, Any]) -> None:
    _, secret = issue_key(org, owner, name="dashboard", scopes=["manage"])

    response = Client().get("/api/v1/usage", HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert response.status_code == 200
    assert response.json()["organization"] == "acme"
    assert response.json()["totals"]["requests"] == 6


def test_an_outsider_sees_nothing_of_another_organizations_usage(outsider: Any, traffic: dict[str, Any]) -> None:
    client = session(outsider)

    assert client.get("/api/v1/usage", {"organization": "acme"}).status_code == 404
    assert client.get("/api/v1/requests", {"organization": "acme"}).status_code == 404
    assert client.get(f"/api/v1/requests/{traffic['ids'][0]}", {"organization": "acme"}).status_code == 404
    own = client.get("/api/v1/requests").json()
    assert own["results"] == []
    assert client.get(f"/api/v1/requests/{traffic['ids'][0]}").status_code == 404


def test_the_request_log_is_newest_first_and_filters_narrow_it(member: Any, traffic: dict[str, Any]) -> None:
    client = session(member)

    def ids(**query: Any) -> list[str]:
        body = client.get("/api/v1/requests", {"organization": "acme", **query}).json()
        return [row["request_id"] for row in body["results"]]

    everything = ids()
    assert everything == [traffic["refused"], *reversed(traffic["ids"])]
    assert ids(key=traffic["other_key"].pk) == [traffic["ids"][4]]
    assert ids(model="gemma-3") == [traffic["ids"][4], traffic["ids"][3]]
    assert ids(outcome="client_cancelled") == [traffic["ids"][3]]
    assert ids(outcome="rate_limited") == [traffic["refused"]]
    assert ids(request_id=traffic["ids"][1]) == [traffic["ids"][1]]
    assert client.get("/api/v1/requests", {"organization": "acme", "outcome": "teleported"}).status_code == 400


def test_the_request_log_pages_with_a_cursor(member: Any, traffic: dict[str, Any]) -> None:
    client = session(member)
    first = client.get("/api/v1/requests", {"organization": "acme", "limit": 4}).json()
    second = client.get(first["next"]).json()

    seen = [row["request_id"] for row in first["results"] + second["results"]]
    assert seen == [traffic["refused"], *reversed(traffic["ids"])]
    assert second["next"] is None


def test_one_request_answers_accepted_forwarded_completed_recorded(member: Any, traffic: dict[str, Any]) -> None:
    body = session(member).get(f"/api/v1/requests/{traffic['ids'][2]}", {"organization": "acme"}).json()

    assert body["stage"] == "completed" and body["outcome"] == "ok"
    for stamp in ("accepted_at", "forwarded_at", "completed_at", "recorded_at"):
        assert body[stamp] is not None
    assert body["key_name"] == "metering test"
    assert "target_id" not in body  # customers never see the router layout


def test_the_request_log_says_which_error_each_request_ended_with(org: Any, key: ApiKey, owner: Any) -> None:
    """A revoked key is told apart from the key's rate limit and the organization's allowance, by code and in words;
    a row recorded before the ledger kept codes is still explained from its outcome."""
    apikey_revoke(key=key, actor=owner)
    revoked = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="client_error"),
        status_code=401,
        error_code="key_revoked",
    )
    quota = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="quota_exhausted"), error_code="quota_exhausted"
    )
    old = refusal(organization_id=org.pk, key_id=key.pk, outcome="rate_limited")  # no code: an older gateway's
    ok = lifecycle(organization_id=org.pk, key_id=key.pk)
    usage_events_ingest(events=[revoked, quota, old, *ok])
    client = session(owner)

    rows = {
        row["request_id"]: row for row in client.get("/api/v1/requests", {"organization": "acme"}).json()["results"]
    }
    assert rows[revoked.request_id]["error_code"] == "key_revoked"
    explained = rows[revoked.request_id]["explanation"]
    assert explained["title"] == "Revoked key"
    key.refresh_from_db()
    at = key.revoked_at.astimezone(UTC)  # type: ignore[union-attr]
    assert explained["what"].endswith(f"It was revoked on {at.day} {at:%b %Y} at {at:%H:%M} (UTC).")
    assert explained["next_step"] == "Create a new key on the API keys page and use it instead."
    assert (rows[quota.request_id]["error_code"], rows[quota.request_id]["explanation"]["title"]) == (
        "quota_exhausted",
        "Your organization's allowance was used up",
    )
    assert (rows[old.request_id]["error_code"], rows[old.request_id]["explanation"]["title"]) == (
        "",
        "This key's rate limit was reached",
    )
    assert (rows[ok[0].request_id]["error_code"], rows[ok[0].request_id]["explanation"]) == ("", None)

    def ids(code: str) -> list[str]:
        body = client.get("/api/v1/requests", {"organization": "acme", "error_code": code}).json()
        return [row["request_id"] for row in body["results"]]

    assert ids("quota_exhausted") == [quota.request_id]
    assert ids("key_revoked") == [revoked.request_id]
    assert ids("key_expired") == []
    refused = client.get("/api/v1/requests", {"organization": "acme", "error_code": "teleported"})
    assert refused.status_code == 400 and "error_code" in refused.json()
    one = client.get(f"/api/v1/requests/{revoked.request_id}", {"organization": "acme"}).json()
    assert (one["error_code"], one["explanation"]["title"]) == ("key_revoked", "Revoked key")


def test_the_schema_documents_the_error_code_and_its_explanation(member: Any) -> None:
    schema = session(member).get("/api/schema/", {"format": "json"}).json()
    event = schema["components"]["schemas"]["UsageEvent"]["properties"]
    assert event["error_code"]["type"] == "string"
    assert "explanation" in event
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/requests"]["get"]["parameters"]}
    assert "quota_exhausted" in parameters["error_code"]["schema"]["enum"]
