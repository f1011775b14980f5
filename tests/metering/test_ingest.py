"""Ingestion: lifecycle events become one ledger row per request, idempotently, in any order, with exact roll-ups."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from apikeys.models import ApiKey
from metering import store
from metering.events import LifecycleEvent
from metering.ingest import usage_events_ingest, usage_events_write
from metering.ledger import WRITABLE_FIELDS, datetime_to_ms
from metering.models import Granularity, UsageEvent, UsageRollup
from tests.metering.events import lifecycle, now_ms, refusal
from tests.metering.helpers import admit, assert_rollups_exact, rollups_now, status

pytestmark = pytest.mark.django_db


def ledger() -> dict[str, tuple[Any, ...]]:
    fields = [name for name in WRITABLE_FIELDS if name != "recorded_at"]
    return {row.request_id: tuple(getattr(row, name) for name in fields) for row in UsageEvent.objects.all()}


def test_a_request_becomes_one_row_that_answers_every_lifecycle_question(org: Any, key: ApiKey, owner: Any) -> None:
    events = lifecycle(organization_id=org.pk, key_id=key.pk, user_id=owner.pk, stream=True)

    assert usage_events_ingest(events=events) == 1

    row = UsageEvent.objects.get()
    assert row.request_id == events[0].request_id
    assert (row.organization_id, row.api_key_id, row.user_id) == (org.pk, key.pk, owner.pk)
    assert (row.stage, row.outcome, row.status_code) == ("completed", "ok", 200)
    assert datetime_to_ms(row.accepted_at) == events[0].at_ms
    assert datetime_to_ms(row.forwarded_at) == events[1].at_ms
    assert datetime_to_ms(row.completed_at) == events[2].at_ms
    assert row.recorded_at is not None
    assert (row.model, row.served_model, row.family, row.plan) == ("gpt-oss-20b", "gpt-oss-20b", "oss", "free")
    assert (row.cost_units, row.billed, row.refunded, row.stream) == (1, True, False, True)
    assert (row.prompt_tokens, row.completion_tokens, row.target_id) == (12, 34, 7)
    key.refresh_from_db()
    assert datetime_to_ms(key.last_used_at) == events[2].at_ms  # type: ignore[arg-type]


def test_replaying_the_same_events_changes_nothing(org: Any, key: ApiKey) -> None:
    events = [e for _ in range(20) for e in lifecycle(organization_id=org.pk, key_id=key.pk)]
    usage_events_ingest(events=events)
    before, recorded, rollups = ledger(), list(UsageEvent.objects.values_list("recorded_at", flat=True)), rollups_now()

    assert usage_events_ingest(events=events) == 0
    assert usage_events_ingest(events=list(reversed(events))) == 0

    assert ledger() == before
    assert list(UsageEvent.objects.values_list("recorded_at", flat=True)) == recorded
    assert rollups_now() == rollups
    assert UsageEvent.objects.count() == 20
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.requests, day.billed_requests, day.cost_units, day.outcome_ok) == (20, 20, 20, 20)
    assert (day.prompt_tokens, day.completion_tokens) == (20 * 12, 20 * 34)


def test_a_late_forwarded_event_does_not_undo_the_completion(org: Any, key: ApiKey) -> None:
    accepted, forwarded, completed = lifecycle(organization_id=org.pk, key_id=key.pk)

    usage_events_ingest(events=[accepted])
    assert UsageEvent.objects.get().stage == "accepted"
    usage_events_ingest(events=[completed])
    usage_events_ingest(events=[forwarded])

    row = UsageEvent.objects.get()
    assert (row.stage, row.outcome, row.completion_tokens) == ("completed", "ok", 34)
    assert row.forwarded_at is not None and row.completed_at is not None
    assert_rollups_exact()


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "portable-sql"])
def test_any_order_and_any_batching_give_the_same_ledger_and_roll_ups(
    org: Any, key: ApiKey, copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "use_copy", copy)  # the SQLite form of the statements, run on PostgreSQL
    start = datetime(2025, 3, 1, 23, 0, tzinfo=UTC)  # two days and many hours: requests land in many buckets
    rng = random.Random(8)
    events: list[LifecycleEvent] = []
    for index in range(300):
        at = datetime_to_ms(start) + index * 20 * 60_000 // 30 + rng.randrange(60_000)
        outcome = rng.choice(["ok", "ok", "ok", "backend_error", "client_cancelled"])
        refunded = outcome == "backend_error"
        events += lifecycle(
            organization_id=org.pk, key_id=key.pk, at_ms=at, outcome=outcome, refunded=refunded, cost=rng.choice([1, 3])
        )
        if index % 7 == 0:
            events.append(refusal(organization_id=org.pk, key_id=key.pk, at_ms=at + 5))
    usage_events_ingest(events=events)
    in_order, in_order_rollups = ledger(), rollups_now()
    UsageEvent.objects.all().delete()
    UsageRollup.objects.all().delete()

    shuffled = events[:]
    rng.shuffle(shuffled)
    position = 0
    while position < len(shuffled):
        size = rng.randrange(1, 90)
        usage_events_ingest(events=shuffled[position : position + size])
        position += size

    assert ledger() == in_order
    assert rollups_now() == in_order_rollups
    assert_rollups_exact()
    assert UsageEvent.objects.count() == 300 + 43


def test_a_request_whose_admission_arrives_last_is_counted_in_the_hour_it_arrived(org: Any, key: ApiKey) -> None:
    just_before_eleven = datetime_to_ms(datetime(2025, 3, 1, 10, 59, 59, 995_000, tzinfo=UTC))
    accepted, forwarded, completed = lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=just_before_eleven)

    usage_events_ingest(events=[completed, forwarded])  # both after 11:00
    usage_events_ingest(events=[accepted])  # 10:59:59.995

    hours = {
        row.bucket_start.hour: row.requests
        for row in UsageRollup.objects.filter(granularity=Granularity.HOUR)
        if row.requests
    }
    assert hours == {10: 1}
    assert_rollups_exact()


def test_refusals_are_in_the_request_log_but_never_count_as_usage(org: Any, key: ApiKey) -> None:
    event = refusal(organization_id=org.pk, key_id=key.pk, outcome="quota_exhausted")
    spoofed = dataclasses.replace(event, cost_units=5)  # a refusal claiming a cost still costs nothing

    usage_events_ingest(events=[spoofed])

    row = UsageEvent.objects.get()
    assert (row.stage, row.outcome, row.status_code) == ("refused", "quota_exhausted", 429)
    assert (row.billed, row.cost_units, row.accepted_at) == (False, 0, None)
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.requests, day.billed_requests, day.cost_units, day.outcome_quota_exhausted) == (1, 0, 0, 1)


def test_a_refunded_request_is_recorded_but_not_billed(org: Any, key: ApiKey) -> None:
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, outcome="backend_error", refunded=True))

    row = UsageEvent.objects.get()
    assert (row.outcome, row.refunded, row.billed) == ("backend_error", True, False)
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.requests, day.billed_requests, day.cost_units, day.outcome_backend_error) == (1, 0, 0, 1)


def test_events_it_cannot_store_are_set_aside_and_the_rest_is_written(org: Any, key: ApiKey) -> None:
    good = lifecycle(organization_id=org.pk, key_id=key.pk)
    orphan = lifecycle(organization_id=987_654, key_id=key.pk)[0]
    huge = lifecycle(organization_id=org.pk, key_id=key.pk, prompt_tokens=2**40)[2]

    result = usage_events_write(events=[orphan, *good, huge])

    assert [(item.index, item.reason) for item in result.rejected] == [
        (0, "unknown organization 987654"),
        (4, "prompt_tokens out of range"),
    ]
    assert list(UsageEvent.objects.values_list("request_id", flat=True)) == [good[0].request_id]


def test_usage_stays_attributed_to_the_organization_when_user_and_key_are_unknown(org: Any, key: ApiKey) -> None:
    events = lifecycle(organization_id=org.pk, key_id=424_242, user_id=535_353)

    usage_events_ingest(events=events)

    row = UsageEvent.objects.get()
    assert (row.organization_id, row.api_key_id, row.reported_key_id, row.user_id) == (org.pk, None, 424_242, None)
    assert UsageRollup.objects.get(granularity=Granularity.DAY).key_id == 424_242


def test_a_key_of_another_organization_is_not_linked(org: Any, key: ApiKey, outsider: Any) -> None:
    from accounts.models import Organization

    elsewhere = Organization.objects.get(slug="elsewhere")
    usage_events_ingest(events=lifecycle(organization_id=elsewhere.pk, key_id=key.pk))

    row = UsageEvent.objects.get()
    assert (row.organization_id, row.api_key_id) == (elsewhere.pk, None)


def test_last_used_never_moves_backwards(org: Any, key: ApiKey) -> None:
    late = now_ms()
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=late))
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=late - 3_600_000))

    key.refresh_from_db()
    assert datetime_to_ms(key.last_used_at) == late + 20  # type: ignore[arg-type]


def test_a_completed_event_carrying_the_forward_time_stands_in_for_the_forwarded_one(org: Any, key: ApiKey) -> None:
    from gateway.usage import _without_superseded

    accepted, forwarded, completed = lifecycle(organization_id=org.pk, key_id=key.pk)
    completed = dataclasses.replace(completed, forwarded_at_ms=forwarded.at_ms)
    other_accepted, other_forwarded, _ = lifecycle(organization_id=org.pk, key_id=key.pk)

    # What the gateway writes for a quick request (forwarded and completed in one flush), and for one in flight.
    batch = _without_superseded([accepted, forwarded, completed, other_accepted, other_forwarded])
    assert [event.stage for event in batch] == ["accepted", "completed", "accepted", "forwarded"]

    usage_events_ingest(events=batch)
    row = UsageEvent.objects.get(request_id=accepted.request_id)
    assert datetime_to_ms(row.forwarded_at) == forwarded.at_ms
    assert (row.stage, row.target_id) == ("completed", 7)
    in_flight = UsageEvent.objects.get(request_id=other_accepted.request_id)
    assert (in_flight.stage, datetime_to_ms(in_flight.forwarded_at)) == ("forwarded", other_forwarded.at_ms)


def test_an_unmade_forwarded_event_is_made_only_for_a_request_still_in_flight(org: Any, key: ApiKey) -> None:
    from gateway.usage import _without_superseded

    accepted, forwarded, completed = lifecycle(organization_id=org.pk, key_id=key.pk)
    completed = dataclasses.replace(completed, forwarded_at_ms=forwarded.at_ms)
    other_accepted, other_forwarded, _ = lifecycle(organization_id=org.pk, key_id=key.pk)
    made: list[str] = []

    def unmade(event: Any) -> tuple[str, Any]:
        return (event.request_id, lambda: made.append(event.request_id) or event)

    batch = _without_superseded([accepted, unmade(forwarded), completed, other_accepted, unmade(other_forwarded)])
    assert [event.stage for event in batch] == ["accepted", "completed", "accepted", "forwarded"]
    assert made == [other_forwarded.request_id]  # the completed request's was never built
    usage_events_ingest(events=batch)
    in_flight = UsageEvent.objects.get(request_id=other_accepted.request_id)
    assert (in_flight.stage, datetime_to_ms(in_flight.forwarded_at)) == ("forwarded", other_forwarded.at_ms)


@pytest.mark.parametrize("refusal_first", [True, False])
def test_a_refusal_wins_over_an_admission_recorded_for_the_same_request(
    org: Any, key: ApiKey, refusal_first: bool
) -> None:
    """Redis ran an admission call after the gateway had stopped waiting for it and answered 503: the ledger hears
    of the request twice, `accepted` (from the late script) and `refused` (what the client saw). Either order, the
    request is refused and never billed."""
    accepted = lifecycle(organization_id=org.pk, key_id=key.pk, stages=("accepted",))[0]
    refused = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="routing_error"),
        request_id=accepted.request_id,
        status_code=503,
    )
    for event in [refused, accepted] if refusal_first else [accepted, refused]:
        usage_events_ingest(events=[event])  # separate batches, as two drains would see them

    row = UsageEvent.objects.get(request_id=accepted.request_id)
    assert (row.stage, row.outcome, row.status_code) == ("refused", "routing_error", 503)
    assert (row.billed, row.refunded) == (False, True)  # the late booking was given back
    assert_rollups_exact()


@pytest.mark.parametrize("refusal_first", [True, False])
def test_units_redis_booked_for_a_refused_request_are_given_back_once(
    org: Any, key: ApiKey, counters: str, refusal_first: bool, django_capture_on_commit_callbacks: Any
) -> None:
    """The late admission booked a unit in the counters; the client was refused. Ingestion gives it back when the
    row first becomes refused-after-admission, and never again on a replay."""
    accepted = lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=now_ms() - 1000, stages=("accepted",))[0]
    refused = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="routing_error"),
        request_id=accepted.request_id,
        status_code=503,
    )
    for _ in range(2):  # two requests' units in the counters: the late one, and one served
        admit(organization_id=org.pk, key_id=key.pk, at_ms=accepted.admitted_at_ms)  # type: ignore[arg-type]
    with django_capture_on_commit_callbacks(execute=True):
        for event in [refused, accepted] if refusal_first else [accepted, refused]:
            usage_events_ingest(events=[event])
        usage_events_ingest(events=[accepted, refused])  # a replay of both

    now = now_ms()
    assert [state.used for state in status(organization_id=org.pk, key_id=key.pk, now_ms=now)] == [1, 1, 1]  # type: ignore[attr-defined]


def test_a_refund_the_gateway_could_not_make_is_made_once_by_ingestion(
    org: Any, key: ApiKey, counters: str, django_capture_on_commit_callbacks: Any
) -> None:
    """Redis was unreachable when the gateway gave a failed request's unit back: its completed event says so, and
    the unit goes back when the ledger first records the refund, never again on a replay."""
    events = lifecycle(
        organization_id=org.pk, key_id=key.pk, at_ms=now_ms() - 1000, outcome="backend_error", refunded=True
    )
    events[-1] = dataclasses.replace(events[-1], refund_owed=True)
    for _ in range(2):  # the failed request's unit, and one served
        admit(organization_id=org.pk, key_id=key.pk, at_ms=events[0].admitted_at_ms)  # type: ignore[arg-type]

    with django_capture_on_commit_callbacks(execute=True):
        usage_events_ingest(events=events[:1])
        usage_events_ingest(events=events[1:])
        usage_events_ingest(events=events)  # a replay

    row = UsageEvent.objects.get(request_id=events[0].request_id)
    assert (row.billed, row.refunded) == (False, True)
    assert [state.used for state in status(organization_id=org.pk, key_id=key.pk, now_ms=now_ms())] == [1, 1, 1]  # type: ignore[attr-defined]
