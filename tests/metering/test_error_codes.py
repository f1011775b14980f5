"""The ledger keeps the error code a request ended with: carried by its lifecycle events, merged with the outcome it
belongs to (a refusal's wins over anything), bounded like every other string, and explained from."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from apikeys.models import ApiKey
from metering.events import LifecycleEvent
from metering.ingest import event_problem, usage_events_write
from metering.ledger import row_apply_events, row_close_unknown, row_from_events
from metering.models import UsageEvent
from tests.metering.events import lifecycle, now_ms, refusal
from tests.metering.helpers import assert_rollups_exact

pytestmark = [pytest.mark.django_db]


def failed(org: Any, key: ApiKey, code: str = "backend_error", outcome: str = "backend_error") -> list[LifecycleEvent]:
    events = lifecycle(organization_id=org.pk, key_id=key.pk, outcome=outcome, refunded=True)
    events[-1] = dataclasses.replace(events[-1], error_code=code)
    return events


def test_each_request_keeps_the_code_its_client_was_sent(org: Any, key: ApiKey) -> None:
    revoked = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="client_error"),
        status_code=401,
        error_code="key_revoked",
    )
    limited = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="rate_limited"), error_code="rate_limit_exceeded"
    )
    quota = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="quota_exhausted"), error_code="quota_exhausted"
    )
    timeout = failed(org, key, "backend_timeout", "backend_timeout")
    ok = lifecycle(organization_id=org.pk, key_id=key.pk)
    in_flight = lifecycle(organization_id=org.pk, key_id=key.pk, stages=("accepted",))
    result = usage_events_write(events=[revoked, limited, quota, *timeout, *ok, *in_flight])
    assert not result.rejected

    codes = dict(UsageEvent.objects.values_list("request_id", "error_code"))
    assert codes == {
        revoked.request_id: "key_revoked",
        limited.request_id: "rate_limit_exceeded",
        quota.request_id: "quota_exhausted",
        timeout[0].request_id: "backend_timeout",
        ok[0].request_id: "",
        in_flight[0].request_id: "",
    }
    assert_rollups_exact()  # the code is rolled up nowhere; the roll-ups are what they were


def test_a_refusals_code_wins_over_a_completions_in_any_order_and_batching(org: Any, key: ApiKey) -> None:
    """Redis ran an admission after the gateway gave up on it and answered 503 service_unavailable: the ledger also
    hears of an admission (and here of a failed completion). However the events arrive, the row says what the
    client was told."""
    accepted, forwarded, completed = failed(org, key)
    refused = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="routing_error"),
        request_id=accepted.request_id,
        status_code=503,
        error_code="service_unavailable",
    )
    events = [refused, accepted, forwarded, completed]
    for order in itertools.permutations(events):
        row = row_from_events([order[0]])
        for event in order[1:]:  # one batch per event, as separate drains would see them
            row_apply_events(row, [event])
        assert (row.stage, row.outcome, row.error_code) == ("refused", "routing_error", "service_unavailable"), order
        assert row_from_events(list(order)).error_code == "service_unavailable"  # all in one batch

    usage_events_write(events=[completed])
    usage_events_write(events=[refused, accepted, forwarded])
    assert usage_events_write(events=events).written == 0  # a replay changes nothing
    row = UsageEvent.objects.get(request_id=accepted.request_id)
    assert (row.stage, row.error_code, row.billed) == ("refused", "service_unavailable", False)


def test_a_refusal_without_a_code_leaves_none_behind(org: Any, key: ApiKey) -> None:
    """An older gateway's refusal names no code; a completion's code does not describe a refused request either."""
    accepted, forwarded, completed = failed(org, key)
    refused = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, outcome="routing_error"), request_id=accepted.request_id
    )
    late = row_from_events([accepted, forwarded, completed])
    row_apply_events(late, [refused])
    assert (late.error_code, row_from_events([refused, accepted, forwarded, completed]).error_code) == ("", "")


def test_the_first_completion_sets_the_code_and_replaces_reconciliations_unknown(org: Any, key: ApiKey) -> None:
    from django.utils import timezone

    accepted, forwarded, completed = failed(org, key, "backend_timeout", "backend_timeout")
    row = row_from_events([accepted, forwarded])
    row_close_unknown(row, now=timezone.now(), refunded=False)
    assert (row.outcome, row.error_code) == ("unknown", "")
    row_apply_events(row, [completed])
    assert (row.stage, row.outcome, row.error_code) == ("completed", "backend_timeout", "backend_timeout")
    # A second completion (the same request reported twice) changes neither the outcome nor its code.
    row_apply_events(row, [dataclasses.replace(completed, outcome="ok", error_code="", at_ms=completed.at_ms + 5)])
    assert (row.outcome, row.error_code) == ("backend_timeout", "backend_timeout")


def test_the_code_travels_in_the_stream_entry_and_an_empty_one_costs_nothing(org: Any, key: ApiKey) -> None:
    event = refusal(organization_id=org.pk, key_id=key.pk, outcome="quota_exhausted")
    with_code = dataclasses.replace(event, error_code="quota_exhausted")
    assert LifecycleEvent.from_fields(with_code.to_fields()).error_code == "quota_exhausted"
    assert '"error_code"' not in event.to_fields()["e"]
    assert LifecycleEvent.from_fields(event.to_fields()).error_code == ""


def test_a_code_longer_than_the_column_is_set_aside_with_the_reason(org: Any, key: ApiKey) -> None:
    event = dataclasses.replace(
        refusal(organization_id=org.pk, key_id=key.pk, at_ms=now_ms()), error_code="x" * 41, outcome="client_error"
    )
    assert event_problem(event) == "error_code longer than 40 characters"
    assert event_problem(dataclasses.replace(event, error_code="bad\x00code")) == (
        "error_code holds a NUL character, which PostgreSQL cannot store"
    )
    result = usage_events_write(events=[event])
    assert [rejected.reason for rejected in result.rejected] == ["error_code longer than 40 characters"]
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("copy", [True, False])
def test_a_drain_worker_of_the_previous_release_still_writes_rows(
    org: Any, key: ApiKey, copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a rolling deploy, workers still running the release before this column insert rows without it: the
    database fills in an empty code instead of refusing them (the drain would dead-letter good events)."""
    from metering import store
    from metering.ledger import COLUMNS, row_from_events

    monkeypatch.setattr(store, "use_copy", copy)
    row = row_from_events(lifecycle(organization_id=org.pk, key_id=key.pk))
    before = tuple(name for name in COLUMNS if name != "error_code")
    values = [tuple(getattr(row, name) for name in before)]
    store.bulk_insert(UsageEvent, before, values, "ON CONFLICT (request_id) DO NOTHING")
    assert UsageEvent.objects.get(request_id=row.request_id).error_code == ""
