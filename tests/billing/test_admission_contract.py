"""The admission contract, run against both engines (in-process and Redis) with time controlled through now_ms.

The free plan's shape, scaled down: a key may send 3 requests a minute; its organization 5 per 5 hours and 8 a week.
"""

from __future__ import annotations

import pytest

from billing.admission.types import AdmissionEngine, Decision, Limit, LimitState
from billing.admission.window import BUCKETS_PER_WINDOW
from tests.billing.conftest import Run

T0 = 1_800_000_000_000  # a whole second, like most real clocks' readings are not: the tests add odd offsets
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
WEEK = 7 * 24 * HOUR

KEY_RATE = Limit("key_rate", "key:42:rate", 3, MINUTE)
SHORT = Limit("short", "org:short", 5, 5 * HOUR)
WEEKLY = Limit("weekly", "org:weekly", 8, WEEK)
PLAN = [KEY_RATE, SHORT, WEEKLY]


def key(ident: int, limit: int = 3) -> Limit:
    return Limit("key_rate", f"key:{ident}:rate", limit, MINUTE)


def admit(run: Run, engine: AdmissionEngine, scope: str, limits: list[Limit], at: int, cost: int = 1) -> Decision:
    decision: Decision = run(engine.admit(scope=scope, limits=limits, cost=cost, now_ms=at))
    return decision


def status(engine: AdmissionEngine, scope: str, limits: list[Limit], at: int) -> tuple[LimitState, ...]:
    return engine.status_sync(scope=scope, limits=limits, now_ms=at)


def used(engine: AdmissionEngine, scope: str, limits: list[Limit], at: int) -> list[int]:
    return [state.used for state in status(engine, scope, limits, at)]


def frees_between(booked_at: int, window_ms: int) -> tuple[int, int]:
    """The documented error bound: a unit leaves the window no earlier than booked + window, and at most one bucket
    (window / BUCKETS_PER_WINDOW) later."""
    return booked_at + window_ms, booked_at + window_ms + window_ms // BUCKETS_PER_WINDOW


# Limits and refusal order


def test_it_admits_up_to_the_key_rate_and_then_refuses(run: Run, engine: AdmissionEngine, scope: str) -> None:
    decisions = [admit(run, engine, scope, PLAN, at=T0 + step * SECOND) for step in range(4)]

    assert [decision.admitted for decision in decisions] == [True, True, True, False]
    refused = decisions[-1]
    assert refused.refused_by == "key_rate"
    assert [state.name for state in refused.states] == ["key_rate", "short", "weekly"]
    assert [(state.used, state.remaining) for state in refused.states] == [(3, 0), (3, 2), (3, 5)]
    assert decisions[0].retry_after_ms == 0 and refused.retry_after_ms > 0


def test_the_key_rate_refuses_before_the_organizations_allowances(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    for step in range(3):
        assert admit(run, engine, scope, PLAN, at=T0 + step).admitted
    for step in range(2):
        assert admit(run, engine, scope, [key(43), SHORT, WEEKLY], at=T0 + 10 + step).admitted

    # Key 42 is over its rate and the organization over its short allowance: the key's limit is named.
    assert admit(run, engine, scope, PLAN, at=T0 + 20).refused_by == "key_rate"
    # A fresh key of the same organization has rate to spare, so the allowance is what refuses it.
    assert admit(run, engine, scope, [key(44), SHORT, WEEKLY], at=T0 + 21).refused_by == "short"


def test_the_weekly_allowance_refuses_when_the_short_window_has_room(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    busy_key = key(43, limit=100)
    for step in range(5):
        assert admit(run, engine, scope, [busy_key, SHORT, WEEKLY], at=T0 + step).admitted
    later = T0 + 6 * HOUR  # the short window has rolled past those five
    for step in range(3):
        assert admit(run, engine, scope, [busy_key, SHORT, WEEKLY], at=later + step).admitted

    refused = admit(run, engine, scope, PLAN, at=later + MINUTE)

    assert refused.refused_by == "weekly"
    assert refused.states[1].used == 3 and refused.states[2].used == 8
    earliest, latest = frees_between(T0, WEEK)
    assert earliest <= later + MINUTE + refused.retry_after_ms <= latest


def test_a_limit_of_zero_admits_nothing(run: Run, engine: AdmissionEngine, scope: str) -> None:
    closed = Limit("short", "org:short", 0, 5 * HOUR)

    decision = admit(run, engine, scope, [KEY_RATE, closed], at=T0)

    assert not decision.admitted and decision.refused_by == "short"
    assert used(engine, scope, [KEY_RATE, closed], at=T0) == [0, 0]


# All or nothing


def test_a_refused_request_consumes_nothing_anywhere(run: Run, engine: AdmissionEngine, scope: str) -> None:
    small_week = Limit("weekly", "org:weekly", 2, WEEK)
    limits = [KEY_RATE, SHORT, small_week]
    assert admit(run, engine, scope, limits, at=T0).admitted
    assert admit(run, engine, scope, limits, at=T0 + 1).admitted

    refusals = [admit(run, engine, scope, limits, at=T0 + 2 + step) for step in range(5)]

    assert {decision.refused_by for decision in refusals} == {"weekly"}
    assert used(engine, scope, limits, at=T0 + 10) == [2, 2, 2]


def test_a_key_over_its_rate_leaves_the_organizations_allowance_to_other_keys(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    for step in range(3):
        assert admit(run, engine, scope, PLAN, at=T0 + step).admitted
    for step in range(10):
        assert not admit(run, engine, scope, PLAN, at=T0 + 10 + step).admitted

    other = [key(43), SHORT, WEEKLY]
    results = [admit(run, engine, scope, other, at=T0 + 100 + step).admitted for step in range(3)]

    assert results == [True, True, False]  # the organization's 5 minus the 3 key 42 was admitted for


# Rolling windows


def test_a_unit_frees_exactly_when_next_free_at_says_and_not_before(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    one_a_minute = [key(42, limit=1)]
    booked_at = T0 + 12_345
    first = admit(run, engine, scope, one_a_minute, at=booked_at)
    free_at = first.states[0].next_free_at_ms
    assert free_at is not None
    earliest, latest = frees_between(booked_at, MINUTE)
    assert earliest <= free_at <= latest

    just_before = admit(run, engine, scope, one_a_minute, at=free_at - 1)

    assert not just_before.admitted and just_before.retry_after_ms == 1
    assert admit(run, engine, scope, one_a_minute, at=free_at).admitted


def test_windows_roll_rather_than_reset_on_the_clock(run: Run, engine: AdmissionEngine, scope: str) -> None:
    two_a_minute = [key(42, limit=2)]
    assert admit(run, engine, scope, two_a_minute, at=T0 + 50 * SECOND).admitted
    assert admit(run, engine, scope, two_a_minute, at=T0 + 59 * SECOND).admitted

    # A calendar minute would have started afresh at T0 + 60 s.
    refused = admit(run, engine, scope, two_a_minute, at=T0 + 61 * SECOND)

    assert not refused.admitted
    earliest, latest = frees_between(T0 + 50 * SECOND, MINUTE)
    assert earliest <= T0 + 61 * SECOND + refused.retry_after_ms <= latest
    # Once the first unit has left, exactly one more fits: the second is still in the window.
    after_first = latest
    assert admit(run, engine, scope, two_a_minute, at=after_first).admitted
    assert not admit(run, engine, scope, two_a_minute, at=after_first + 1).admitted


def test_next_free_and_clear_times_follow_the_oldest_and_newest_units(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    five_a_minute = [key(42, limit=5)]
    for offset in (0, 10 * SECOND, 20 * SECOND):
        assert admit(run, engine, scope, five_a_minute, at=T0 + 7 + offset).admitted

    (state,) = status(engine, scope, five_a_minute, at=T0 + 21 * SECOND)

    assert (state.used, state.remaining) == (3, 2)
    assert state.next_free_at_ms is not None and state.clear_at_ms is not None
    oldest_earliest, oldest_latest = frees_between(T0 + 7, MINUTE)
    newest_earliest, newest_latest = frees_between(T0 + 7 + 20 * SECOND, MINUTE)
    assert oldest_earliest <= state.next_free_at_ms <= oldest_latest
    assert newest_earliest <= state.clear_at_ms <= newest_latest
    (before_clear,) = status(engine, scope, five_a_minute, at=state.clear_at_ms - 1)
    (at_clear,) = status(engine, scope, five_a_minute, at=state.clear_at_ms)
    assert before_clear.used == 1 and before_clear.next_free_at_ms == state.clear_at_ms
    assert at_clear == LimitState("key_rate", 5, 0, 5, MINUTE, None, None)


def test_status_reads_the_numbers_admit_enforces_without_consuming(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    admit(run, engine, scope, PLAN, at=T0)
    last = admit(run, engine, scope, PLAN, at=T0 + 5 * SECOND, cost=2)

    readings = [status(engine, scope, PLAN, at=T0 + 5 * SECOND) for _ in range(5)]
    readings.append(run(engine.status(scope=scope, limits=PLAN, now_ms=T0 + 5 * SECOND)))

    assert all(reading == last.states for reading in readings)
    assert [state.used for state in last.states] == [3, 3, 3]


# Weights


def test_a_weighted_request_counts_as_several_units(run: Run, engine: AdmissionEngine, scope: str) -> None:
    decision = admit(run, engine, scope, [key(42, limit=10), SHORT], at=T0, cost=4)

    assert decision.admitted
    assert [(state.used, state.remaining) for state in decision.states] == [(4, 6), (4, 1)]
    assert admit(run, engine, scope, [key(42, limit=10), SHORT], at=T0 + 1, cost=2).refused_by == "short"


@pytest.mark.parametrize(("cost", "fits_after"), [(1, 0), (3, 0), (5, 1), (7, 1), (9, 2), (10, 2)])
def test_a_heavy_request_is_told_exactly_when_it_fits(
    run: Run, engine: AdmissionEngine, scope: str, cost: int, fits_after: int
) -> None:
    ten_a_minute = [key(42, limit=10)]
    bookings = [(T0 + 3, 4), (T0 + 10 * SECOND, 4), (T0 + 20 * SECOND, 2)]
    for at, units in bookings:
        assert admit(run, engine, scope, ten_a_minute, at=at, cost=units).admitted
    now = T0 + 30 * SECOND

    refused = admit(run, engine, scope, ten_a_minute, at=now, cost=cost)

    # It fits once enough of the oldest bookings have left: 4 units, then 8, then all 10.
    fits_at = now + refused.retry_after_ms
    earliest, latest = frees_between(bookings[fits_after][0], MINUTE)
    assert not refused.admitted and earliest <= fits_at <= latest
    assert not admit(run, engine, scope, ten_a_minute, at=fits_at - 1, cost=cost).admitted
    assert admit(run, engine, scope, ten_a_minute, at=fits_at, cost=cost).admitted


def test_a_request_heavier_than_a_limit_is_never_admitted(run: Run, engine: AdmissionEngine, scope: str) -> None:
    decision = admit(run, engine, scope, PLAN, at=T0, cost=4)

    assert not decision.admitted and decision.refused_by == "key_rate"
    assert decision.retry_after_ms == MINUTE
    assert used(engine, scope, PLAN, at=T0) == [0, 0, 0]


def test_retry_after_waits_until_the_cost_fits_in_every_limit(run: Run, engine: AdmissionEngine, scope: str) -> None:
    limits = [KEY_RATE, Limit("short", "org:short", 3, 5 * HOUR)]
    for step in range(3):
        assert admit(run, engine, scope, limits, at=T0 + step).admitted

    refused = admit(run, engine, scope, limits, at=T0 + SECOND)

    # The key frees up within a minute, but the allowance only after five hours: telling the client "a minute" would
    # only earn it another refusal.
    assert refused.refused_by == "key_rate"
    earliest, latest = frees_between(T0, 5 * HOUR)
    assert earliest <= T0 + SECOND + refused.retry_after_ms <= latest


# Refunds


def test_a_refund_gives_the_units_back_everywhere(run: Run, engine: AdmissionEngine, scope: str) -> None:
    decision = admit(run, engine, scope, PLAN, at=T0, cost=2)

    run(engine.refund(scope=scope, limits=PLAN, cost=2, admitted_at_ms=decision.admitted_at_ms))

    assert used(engine, scope, PLAN, at=T0 + 1) == [0, 0, 0]
    assert all(state.next_free_at_ms is None for state in status(engine, scope, PLAN, at=T0 + 1))


def test_a_refund_never_takes_a_counter_below_zero(run: Run, engine: AdmissionEngine, scope: str) -> None:
    decision = admit(run, engine, scope, PLAN, at=T0)
    for cost in (1, 1, 5):
        run(engine.refund(scope=scope, limits=PLAN, cost=cost, admitted_at_ms=decision.admitted_at_ms))

    results = [admit(run, engine, scope, PLAN, at=T0 + 10 + step).admitted for step in range(4)]

    assert results == [True, True, True, False]  # a negative count would have let a fourth one through


def test_a_refund_goes_back_to_the_bucket_it_was_booked_in(run: Run, engine: AdmissionEngine, scope: str) -> None:
    two_a_minute = [key(42, limit=2)]
    first = admit(run, engine, scope, two_a_minute, at=T0 + 3)
    second = admit(run, engine, scope, two_a_minute, at=T0 + 30 * SECOND)

    run(engine.refund(scope=scope, limits=two_a_minute, cost=1, admitted_at_ms=second.admitted_at_ms))

    (state,) = status(engine, scope, two_a_minute, at=T0 + 31 * SECOND)
    assert state.used == 1
    # What remains is the first request, so the window clears when it leaves, not 30 seconds later.
    assert state.next_free_at_ms == state.clear_at_ms == first.states[0].next_free_at_ms


def test_refunds_in_any_order_leave_exactly_the_units_not_refunded(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    limits = [key(42, limit=10)]
    oldest, middle, newest = (
        admit(run, engine, scope, limits, at=T0 + offset, cost=cost)
        for offset, cost in ((3, 1), (10 * SECOND, 2), (20 * SECOND, 3))
    )

    run(engine.refund(scope=scope, limits=limits, cost=2, admitted_at_ms=middle.admitted_at_ms))
    after_middle = status(engine, scope, limits, at=T0 + 21 * SECOND)[0]
    run(engine.refund(scope=scope, limits=limits, cost=1, admitted_at_ms=oldest.admitted_at_ms))
    after_oldest = status(engine, scope, limits, at=T0 + 21 * SECOND)[0]

    assert after_middle.used == 4 and after_middle.next_free_at_ms == oldest.states[0].next_free_at_ms
    assert after_oldest.used == 3 and after_oldest.next_free_at_ms == newest.states[0].clear_at_ms
    assert [admit(run, engine, scope, limits, at=T0 + 22 * SECOND, cost=7).admitted for _ in range(2)] == [True, False]


def test_a_partial_refund_leaves_the_rest_counted(run: Run, engine: AdmissionEngine, scope: str) -> None:
    limits = [key(42, limit=10)]
    decision = admit(run, engine, scope, limits, at=T0, cost=5)

    run(engine.refund(scope=scope, limits=limits, cost=2, admitted_at_ms=decision.admitted_at_ms))

    assert used(engine, scope, limits, at=T0 + 1) == [3]


# Plan changes


def test_raising_a_limit_mid_window_admits_at_once(run: Run, engine: AdmissionEngine, scope: str) -> None:
    for step in range(3):
        assert admit(run, engine, scope, PLAN, at=T0 + step).admitted
    assert not admit(run, engine, scope, PLAN, at=T0 + 10).admitted

    upgraded = [key(42, limit=5), SHORT, WEEKLY]
    results = [admit(run, engine, scope, upgraded, at=T0 + 20 + step) for step in range(3)]

    assert [decision.admitted for decision in results] == [True, True, False]
    assert results[1].states[0].limit == 5 and results[1].states[0].used == 5


def test_lowering_a_limit_mid_window_refuses_until_usage_is_below_it(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    bookings = [T0 + 3, T0 + 10 * SECOND, T0 + 20 * SECOND]
    for at in bookings:
        assert admit(run, engine, scope, PLAN, at=at).admitted
    downgraded = [key(42, limit=2), SHORT, WEEKLY]

    refused = admit(run, engine, scope, downgraded, at=T0 + 30 * SECOND)

    assert refused.refused_by == "key_rate"
    assert (refused.states[0].used, refused.states[0].remaining) == (3, 0)
    # Two of the three must leave before one more fits under the new limit of two.
    fits_at = T0 + 30 * SECOND + refused.retry_after_ms
    earliest, latest = frees_between(bookings[1], MINUTE)
    assert earliest <= fits_at <= latest
    assert admit(run, engine, scope, downgraded, at=fits_at).admitted


def test_a_longer_window_keeps_counting_what_the_shorter_one_booked(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    for step in range(5):
        assert admit(run, engine, scope, [key(43, limit=100), SHORT], at=T0 + step).admitted
    longer = Limit("short", "org:short", 5, 10 * HOUR)

    decision = admit(run, engine, scope, [key(44), longer], at=T0 + 6 * HOUR)

    assert decision.refused_by == "short" and decision.states[1].used == 5


# Raise (reconciliation) and reset


def test_raise_fills_a_counter_that_lost_its_units_from_the_ledgers_events(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    now = T0 + 10 * HOUR
    ledger = [(now - 6 * HOUR, 1), (now - 4 * HOUR, 2), (now - HOUR, 1)]  # the first has left the 5-hour window

    engine.raise_sync(scope=scope, limit=SHORT, events=ledger, now_ms=now)

    (state,) = status(engine, scope, [SHORT], at=now)
    assert (state.used, state.remaining) == (3, 2)
    earliest, latest = frees_between(now - 4 * HOUR, 5 * HOUR)
    assert state.next_free_at_ms is not None and earliest <= state.next_free_at_ms <= latest
    results = [admit(run, engine, scope, [key(43), SHORT], at=now + step).admitted for step in range(3)]
    assert results == [True, True, False]


def test_raise_never_lowers_a_counter_below_what_was_admitted(run: Run, engine: AdmissionEngine, scope: str) -> None:
    for step in range(3):
        assert admit(run, engine, scope, [key(43, limit=10), SHORT], at=T0 + step).admitted
    # The ledger has seen one of the three so far (the others are in flight, or not yet drained).
    engine.raise_sync(scope=scope, limit=SHORT, events=[(T0, 1)], now_ms=T0 + 10)
    engine.raise_sync(scope=scope, limit=SHORT, events=[], now_ms=T0 + 10)

    assert used(engine, scope, [SHORT], at=T0 + 10) == [3]
    results = [admit(run, engine, scope, [key(43, limit=10), SHORT], at=T0 + 20 + step).admitted for step in range(3)]
    assert results == [True, True, False]  # 5 in all, never more


def test_raise_takes_the_larger_of_counter_and_ledger_per_bucket(run: Run, engine: AdmissionEngine, scope: str) -> None:
    assert admit(run, engine, scope, [SHORT], at=T0).admitted  # the counter kept one of the bucket's three
    engine.raise_sync(scope=scope, limit=SHORT, events=[(T0, 1), (T0 + 1, 2)], now_ms=T0 + 10)

    assert used(engine, scope, [SHORT], at=T0 + 10) == [3]  # the ledger's three, not 1 + 3


def test_reset_drops_every_counter_of_the_organization_and_no_other(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    neighbour = f"{scope}-n"
    try:
        admit(run, engine, scope, PLAN, at=T0)
        admit(run, engine, scope, [key(43), SHORT, WEEKLY], at=T0)
        admit(run, engine, neighbour, PLAN, at=T0)

        engine.reset_sync(scope=scope)

        assert used(engine, scope, PLAN, at=T0) == [0, 0, 0]
        assert used(engine, scope, [key(43)], at=T0) == [0]
        assert used(engine, neighbour, PLAN, at=T0) == [1, 1, 1]
    finally:
        engine.reset_sync(scope=neighbour)


# Mistakes in the call


@pytest.mark.parametrize(
    ("scope_name", "limits", "cost"),
    [
        ("7}", PLAN, 1),  # would break the Redis hash tag
        ("7*", PLAN, 1),  # would widen a reset to other organizations
        ("7", PLAN, 0),
        ("7", [], 1),
        ("7", [KEY_RATE, KEY_RATE], 1),
        ("7", [Limit("short", "org:short", 5, 0)], 1),
    ],
)
def test_it_rejects_calls_that_cannot_mean_anything(
    run: Run, engine: AdmissionEngine, scope_name: str, limits: list[Limit], cost: int
) -> None:
    with pytest.raises(ValueError):
        run(engine.admit(scope=scope_name, limits=limits, cost=cost, now_ms=T0))


def test_an_unknown_unavailability_policy_is_refused_even_when_redis_is_fine(
    run: Run, engine: AdmissionEngine, scope: str
) -> None:
    with pytest.raises(ValueError):
        run(engine.admit(scope=scope, limits=PLAN, cost=1, now_ms=T0, on_unavailable="fail_sideways"))
    assert used(engine, scope, PLAN, at=T0) == [0, 0, 0]
