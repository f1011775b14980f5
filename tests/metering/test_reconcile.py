"""Reconciliation: requests that never completed are closed as unknown, the period is counted, inconsistent
requests are listed, and admission counters that drifted from the ledger are corrected."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from apikeys.models import ApiKey
from metering.counters import allowance_check
from metering.ingest import usage_events_ingest
from metering.ledger import datetime_to_ms
from metering.models import Granularity, UsageEvent, UsageRollup
from metering.reconcile import usage_reconcile
from tests.metering.events import lifecycle, refusal
from tests.metering.helpers import admit, assert_rollups_exact, status

pytestmark = pytest.mark.django_db


def minutes_ago(minutes: float) -> int:
    return datetime_to_ms(timezone.now() - timedelta(minutes=minutes))


@pytest.fixture
def day(org: Any, key: ApiKey) -> dict[str, str]:
    """Five requests of the last hour: two stuck long ago, one still running, one complete, one refused."""
    ids = org.pk, key.pk
    stuck_accepted = lifecycle(organization_id=ids[0], key_id=ids[1], at_ms=minutes_ago(10), stages=("accepted",))
    stuck_forwarded = lifecycle(
        organization_id=ids[0], key_id=ids[1], at_ms=minutes_ago(9), stages=("accepted", "forwarded")
    )
    running = lifecycle(organization_id=ids[0], key_id=ids[1], at_ms=minutes_ago(1), stages=("accepted", "forwarded"))
    complete = lifecycle(organization_id=ids[0], key_id=ids[1], at_ms=minutes_ago(20))
    refused = refusal(organization_id=ids[0], key_id=ids[1], at_ms=minutes_ago(5))
    usage_events_ingest(events=[*stuck_accepted, *stuck_forwarded, *running, *complete, refused])
    return {
        "stuck_accepted": stuck_accepted[0].request_id,
        "stuck_forwarded": stuck_forwarded[0].request_id,
        "running": running[0].request_id,
        "complete": complete[0].request_id,
        "refused": refused.request_id,
    }


def test_requests_stuck_past_the_total_timeout_are_closed_as_unknown_and_still_count(
    day: dict[str, str], counters: str
) -> None:
    report = usage_reconcile(since=timezone.now() - timedelta(hours=1), drain_first=False)

    assert sorted(report.closed) == sorted([day["stuck_accepted"], day["stuck_forwarded"]])
    for name in ("stuck_accepted", "stuck_forwarded"):
        row = UsageEvent.objects.get(request_id=day[name])
        assert (row.stage, row.outcome, row.billed, row.refunded) == ("closed", "unknown", True, False)
        assert row.closed_at is not None and row.completed_at is None
    assert UsageEvent.objects.get(request_id=day["running"]).stage == "forwarded"
    rollup = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (rollup.outcome_unknown, rollup.outcome_ok, rollup.outcome_rate_limited) == (2, 1, 1)
    assert_rollups_exact()


def test_the_report_counts_each_lifecycle_stage_and_lists_what_does_not_add_up(
    day: dict[str, str], counters: str
) -> None:
    report = usage_reconcile(since=timezone.now() - timedelta(hours=1), drain_first=False)

    counts = (report.seen, report.refused, report.accepted, report.forwarded, report.completed)
    assert counts == (5, 1, 4, 3, 1)
    assert (report.closed_unknown, report.recorded, report.in_flight) == (2, 3, 1)
    assert sorted(request_id for request_id, _ in report.inconsistent) == sorted(
        [day["stuck_accepted"], day["stuck_forwarded"]]
    )
    assert report.inconsistent_count == 2
    text = "\n".join(report.lines())
    assert "accepted 4, forwarded 3, completed 1, recorded 3" in text
    assert day["stuck_accepted"] in text


def test_a_completion_arriving_after_the_close_replaces_unknown(org: Any, key: ApiKey, counters: str) -> None:
    events = lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=minutes_ago(15))
    usage_events_ingest(events=events[:1])
    usage_reconcile(since=timezone.now() - timedelta(hours=1), drain_first=False)
    assert UsageEvent.objects.get().outcome == "unknown"

    usage_events_ingest(events=events[1:])

    row = UsageEvent.objects.get()
    assert (row.stage, row.outcome, row.completion_tokens) == ("completed", "ok", 34)
    rollup = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (rollup.outcome_unknown, rollup.outcome_ok, rollup.billed_requests) == (0, 1, 1)
    assert_rollups_exact()


@override_settings(METERING_REFUND_UNKNOWN=True)
def test_with_the_refund_policy_on_a_closed_request_gives_its_units_back(
    org: Any, key: ApiKey, counters: str, django_capture_on_commit_callbacks: Any
) -> None:
    at = minutes_ago(15)
    admit(organization_id=org.pk, key_id=key.pk, at_ms=at, cost=3)
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=at, cost=3, stages=("accepted",)))

    with django_capture_on_commit_callbacks(execute=True):
        usage_reconcile(since=timezone.now() - timedelta(hours=1), drain_first=False)

    row = UsageEvent.objects.get()
    assert (row.outcome, row.refunded, row.billed) == ("unknown", True, False)
    states = status(organization_id=org.pk, key_id=key.pk, now_ms=datetime_to_ms(timezone.now()))
    assert [state.used for state in states] == [0, 0, 0]  # type: ignore[attr-defined]


def test_counters_below_the_ledger_are_reported_and_raised_to_it(org: Any, key: ApiKey, counters: str) -> None:
    for minutes in (50, 40, 30):
        at = minutes_ago(minutes)
        usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=at))
    admit(organization_id=org.pk, key_id=key.pk, at_ms=minutes_ago(30))  # Redis kept one of the three
    now = datetime_to_ms(timezone.now())

    found = allowance_check(organization_id=org.pk, correct=True, now_ms=now)

    assert sorted((check.limit, check.counter_used, check.ledger_used, check.corrected) for check in found) == [
        ("short", 1, 3, True),
        ("weekly", 1, 3, True),
    ]  # the key's one-minute rate window holds none of them either way
    assert [state.used for state in status(organization_id=org.pk, key_id=key.pk, now_ms=now)] == [0, 3, 3]  # type: ignore[attr-defined]
    assert allowance_check(organization_id=org.pk, correct=True, now_ms=now) == []


def test_counters_above_the_ledger_are_left_alone(org: Any, key: ApiKey, counters: str) -> None:
    """Requests admitted but not yet in the ledger (in flight, or still in the usage stream) stay counted: lowering
    the counter to the ledger would let the organization past its allowance."""
    at = minutes_ago(30)
    admit(organization_id=org.pk, key_id=key.pk, at_ms=at)
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=at))
    for minutes in (20, 10):
        admit(organization_id=org.pk, key_id=key.pk, at_ms=minutes_ago(minutes))  # not drained yet
    now = datetime_to_ms(timezone.now())

    assert allowance_check(organization_id=org.pk, correct=True, now_ms=now) == []
    assert [state.used for state in status(organization_id=org.pk, key_id=key.pk, now_ms=now)] == [0, 3, 3]  # type: ignore[attr-defined]


def test_the_reconcile_command_prints_the_report(day: dict[str, str], counters: str) -> None:
    out = StringIO()

    call_command("reconcile", "--hours", "2", "--no-drain", stdout=out)

    text = out.getvalue()
    assert "requests seen 5: refused 1, accepted 4" in text
    assert day["stuck_forwarded"] in text
    assert "closed as unknown 2 (2 by this run)" in text


def test_a_roll_up_that_disagrees_with_the_ledger_is_repaired(org: Any, key: ApiKey, counters: str) -> None:
    for minutes in (200, 100, 30):
        usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=minutes_ago(minutes)))
    hour = UsageRollup.objects.filter(granularity=Granularity.HOUR, requests__gt=0).order_by("bucket_start").first()
    assert hour is not None
    UsageRollup.objects.filter(pk=hour.pk).update(requests=99, cost_units=0)  # what a bug or a hand edit would do

    report = usage_reconcile(since=timezone.now() - timedelta(days=2), drain_first=False)

    assert report.rollups_repaired == 1
    assert_rollups_exact()
    assert "roll-ups repaired: 1" in report.lines()
