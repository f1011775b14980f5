"""The drain against entries it cannot write: whatever an entry holds and whatever its write raises, it is written or
dead-lettered within a bounded number of tries, and every good entry beside it reaches the ledger."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apikeys.models import ApiKey
from metering import drain as drain_module
from metering.drain import usage_drain
from metering.ingest import usage_events_write
from metering.models import UsageEvent
from metering.reconcile import usage_reconcile
from portal.request_ids import new_request_id
from tests.metering.conftest import Stream
from tests.metering.events import completed_requests, lifecycle, now_ms

pytestmark = pytest.mark.django_db(transaction=True)


def dead_entries(stream: Stream) -> dict[str, str]:
    """Dead letters: original entry id -> reason."""
    return {
        fields[b"dead_entry"].decode(): fields[b"dead_reason"].decode()
        for _, fields in stream.client.xrange(stream.dead)  # type: ignore[union-attr]
    }


def drain_all(stream: Stream, runs: int = 8) -> int:
    """Drain as the beat task does, run after run, until nothing is pending; returns the runs that failed."""
    failures = 0
    for _ in range(runs):
        try:
            usage_drain(consumer="worker-1", **stream.drain_kwargs())
        except Exception:
            failures += 1
        if stream.pending() == 0 and stream.client.xinfo_groups(stream.name)[0]["lag"] == 0:  # type: ignore[index]
            break
    return failures


def test_a_nul_byte_in_an_entry_is_dead_lettered_and_the_other_organizations_requests_are_written(
    org: Any, key: ApiKey, stream: Stream
) -> None:
    """An entry the gateway no longer sends (it refuses such a model), but an older one, or anything else writing
    to the stream, could: PostgreSQL cannot store NUL, and psycopg's COPY raises outside Django's error classes."""
    poison = lifecycle(organization_id=org.pk, key_id=key.pk, model="x\u0000", stages=("accepted",))
    ids = stream.publish([*completed_requests(org, key, 49), *poison])

    assert drain_all(stream) == 0

    assert UsageEvent.objects.filter(stage="completed").count() == 49
    dead = dead_entries(stream)
    assert list(dead) == [ids[-1]]
    assert "NUL" in dead[ids[-1]]


def test_reconcile_survives_an_entry_the_ledger_cannot_hold(org: Any, key: ApiKey) -> None:
    from django.utils import timezone

    from metering.stream import publish_events_sync

    usage_drain()  # the shared stream starts empty for this test
    publish_events_sync(lifecycle(organization_id=org.pk, key_id=key.pk, model="bad\u0000", stages=("accepted",)))
    publish_events_sync(completed_requests(org, key, 2))

    report = usage_reconcile(since=timezone.now() - timedelta(hours=1))

    assert report.drained is not None and (report.drained.entries, report.drained.dead) == (7, 1)
    assert UsageEvent.objects.filter(stage="completed").count() == 2


@override_settings(METERING_MAX_DELIVERIES=3)
def test_an_entry_whose_write_keeps_failing_is_dead_lettered_after_the_bound_and_the_rest_written(
    org: Any, key: ApiKey, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = lifecycle(organization_id=org.pk, key_id=key.pk, stages=("accepted",))[0]
    ids = stream.publish([*completed_requests(org, key, 10), poison])

    def fails_on_the_poison(*, events: Any, **kwargs: Any) -> Any:
        if any(event.request_id == poison.request_id for event in events):
            raise RuntimeError("a failure that is not about the data")
        return usage_events_write(events=events, **kwargs)

    monkeypatch.setattr(drain_module, "usage_events_write", fails_on_the_poison)

    failures = drain_all(stream)

    assert failures == 2  # delivered three times: the third writes each entry alone
    assert UsageEvent.objects.filter(stage="completed").count() == 10
    dead = dead_entries(stream)
    assert list(dead) == [ids[-1]]
    assert "RuntimeError" in dead[ids[-1]] and "delivered 3 times" in dead[ids[-1]]
    assert stream.pending() == 0


def test_an_outage_never_dead_letters_good_entries(
    org: Any, key: ApiKey, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    stream.publish(completed_requests(org, key, 3))

    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    def select_fails(error: Exception) -> None:
        raise error

    monkeypatch.setattr(drain_module, "usage_events_write", database_down)
    monkeypatch.setattr(drain_module, "_raise_if_unavailable", select_fails)
    assert drain_all(stream, runs=8) == 8  # every try fails, well past METERING_MAX_DELIVERIES

    assert dead_entries(stream) == {}
    assert stream.pending() == 9
    monkeypatch.undo()
    assert drain_all(stream) == 0
    assert UsageEvent.objects.filter(stage="completed").count() == 3


# Fuzzing: entries with arbitrary fields, and usage events with arbitrary values in any of their fields.

_ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**31 - 2, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=120)
    | st.sampled_from(["", "\u0000", "x\u0000y", "\ud7ff", "ok", "accepted", "completed", "9" * 30, "-1"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
# Values that each broke, or nearly broke, some layer: NUL (PostgreSQL text), numbers past 32 and 64 bits (integer
# columns, the adapter), negative and zero ids, and strings that parse as numbers.
_NASTY = st.sampled_from(
    ["\u0000", "gpt\u0000", "a" * 81, 2**31, 2**63, 2**64 + 1, -(2**63) - 1, -1, 0, "12345678901234567890123", 1e308]
)
_FIELDS = [
    "stage",
    "request_id",
    "at_ms",
    "organization_id",
    "key_id",
    "user_id",
    "model",
    "served_model",
    "plan",
    "cost_units",
    "admitted_at_ms",
    "outcome",
    "status_code",
    "error_code",
    "target_id",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "stream",
    "refunded",
]


# An accepted event's fields; the ids are the test's to fill in (its organization, a fresh request id) unless an entry
# garbles them.
_ACCEPTED = {
    name: value
    for name, value in asdict(lifecycle(organization_id=1, key_id=1, stages=("accepted",))[0]).items()
    if value is not None and name not in ("organization_id", "key_id", "request_id")
}


@st.composite
def hostile_entry(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["mutated", "mutated", "raw", "bad_json"]))
    if kind == "raw":
        return draw(st.dictionaries(st.binary(max_size=8), st.binary(max_size=40), min_size=1, max_size=4))
    if kind == "bad_json":
        return {"e": draw(st.binary(max_size=60))}
    data = dict(_ACCEPTED)
    for name in draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3, unique=True)):
        data[name] = draw(_NASTY | _ANY_JSON)
    return {"__mutated__": data}


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(entries=st.lists(hostile_entry(), min_size=1, max_size=6))
def test_the_drain_writes_every_good_entry_and_dead_letters_every_bad_one_whatever_they_hold(
    org: Any, key: ApiKey, stream: Stream, entries: list[dict[str, Any]]
) -> None:
    good = completed_requests(org, key, 3)
    raw: list[dict[Any, Any]] = []
    for entry in entries:
        if "__mutated__" in entry:
            data = {
                "organization_id": org.pk,
                "key_id": key.pk,
                "request_id": new_request_id(now_ms()),
                **entry["__mutated__"],
            }
            raw.append({"e": json.dumps(data)})
        else:
            raw.append(entry)
    ids = [str(stream.client.xadd(stream.name, fields).decode()) for fields in raw]  # type: ignore[union-attr]
    ids += stream.publish(good)

    assert drain_all(stream) == 0  # nothing an entry holds makes a run fail

    assert stream.pending() == 0
    good_ids = {event.request_id for event in good}
    rows = set(
        UsageEvent.objects.filter(request_id__in=good_ids, stage="completed").values_list("request_id", flat=True)
    )
    assert rows == good_ids
    dead = dead_entries(stream)
    assert not set(dead) & set(ids[len(raw) :])  # no good entry was set aside
    stream.client.delete(stream.dead)
