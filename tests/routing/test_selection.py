"""Target selection: weighted shares, load awareness, ejected and draining targets left alone."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque

import pytest

from routing.health import BoardSettings, MemoryHealthBoard
from routing.selection import Availability, InFlight, pick_target
from routing.services import target_drain
from routing.table import TargetEntry, load_routing_table
from tests.factories import ModelAliasFactory, RouterPoolFactory, RouterTargetFactory

A = TargetEntry(id=1, pool_id=1, name="a", protocol="cortensor", base_url="http://a", session_id=1, weight=2)
B = TargetEntry(id=2, pool_id=1, name="b", protocol="cortensor", base_url="http://b", session_id=1, weight=1)
ALL = frozenset({1, 2})


def shares(picks: list[TargetEntry | None]) -> dict[str, float]:
    counts = Counter(target.name if target else None for target in picks)
    return {name: count / len(picks) for name, count in counts.items() if name}


def test_weights_two_to_one_give_two_thirds_and_one_third_of_3000_picks() -> None:
    rng = random.Random(7)
    picks = [pick_target([A, B], available=ALL, in_flight=InFlight(), rng=rng) for _ in range(3000)]
    result = shares(picks)
    assert result["a"] == pytest.approx(2 / 3, rel=0.05)
    assert result["b"] == pytest.approx(1 / 3, rel=0.05)


def test_under_steady_load_the_shares_still_follow_the_weights() -> None:
    rng, in_flight, running = random.Random(11), InFlight(), deque[int]()
    picks = []
    for _ in range(3000):
        target = pick_target([A, B], available=ALL, in_flight=in_flight, rng=rng)
        assert target is not None
        picks.append(target)
        in_flight.acquire(target.id)
        running.append(target.id)
        if len(running) > 12:  # requests of equal length: the oldest one finishes
            in_flight.release(running.popleft())
    result = shares(picks)
    assert result["a"] == pytest.approx(2 / 3, rel=0.05)
    assert result["b"] == pytest.approx(1 / 3, rel=0.05)


def test_a_target_stuck_with_requests_in_flight_gets_the_new_ones_sent_elsewhere() -> None:
    in_flight = InFlight()
    for _ in range(5):
        in_flight.acquire(A.id)
    picks = [pick_target([A, B], available=ALL, in_flight=in_flight, rng=random.Random(n)) for n in range(200)]
    assert shares(picks) == {"b": 1.0}
    for _ in range(5):
        in_flight.release(A.id)
    assert in_flight.get(A.id) == 0


def test_an_ejected_target_gets_no_traffic_until_its_cooldown_then_exactly_one_trial() -> None:
    clock = [1000.0]
    board = MemoryHealthBoard(
        BoardSettings(eject_after=3, eject_seconds=30, trial_lease_seconds=60), clock=lambda: clock[0]
    )
    rng = random.Random(3)

    def pick() -> TargetEntry | None:
        available = asyncio.run(board.available([A.id, B.id]))
        return pick_target([A, B], available=available, in_flight=InFlight(), rng=rng)

    for _ in range(3):
        asyncio.run(board.record_failure(A.id))
    assert {target.name for target in (pick() for _ in range(500)) if target} == {"b"}
    clock[0] += 29.9
    assert {target.name for target in (pick() for _ in range(500)) if target} == {"b"}

    clock[0] += 0.2  # the cooldown is over: the next request is the single trial
    assert pick() == A
    assert {target.name for target in (pick() for _ in range(200)) if target} == {"b"}, "one trial at a time"
    asyncio.run(board.record_success(A.id))
    assert "a" in {target.name for target in (pick() for _ in range(200)) if target}


def test_a_failed_trial_ejects_the_target_for_another_cooldown() -> None:
    clock = [0.0]
    board = MemoryHealthBoard(
        BoardSettings(eject_after=1, eject_seconds=10, trial_lease_seconds=60), clock=lambda: clock[0]
    )
    asyncio.run(board.record_failure(A.id))
    clock[0] = 10.0
    assert asyncio.run(board.available([A.id])).trial == A.id
    assert asyncio.run(board.record_failure(A.id)) is True
    clock[0] = 19.9
    assert A.id not in asyncio.run(board.available([A.id]))
    clock[0] = 20.0
    assert asyncio.run(board.available([A.id])).trial == A.id


@pytest.mark.django_db
def test_a_draining_target_gets_no_new_requests() -> None:
    pool = RouterPoolFactory()
    steady = RouterTargetFactory(pool=pool, name="steady")
    leaving = RouterTargetFactory(pool=pool, name="leaving", weight=10)
    ModelAliasFactory(alias="gpt-oss-20b", pool=pool)
    before = load_routing_table().route("gpt-oss-20b")
    assert before is not None and {t.name for t in before.targets} == {"steady", "leaving"}

    target_drain(target=leaving, actor=None)
    route = load_routing_table().route("gpt-oss-20b")
    assert route is not None
    picks = [
        pick_target(route.targets, available=frozenset(route.target_ids), rng=random.Random(n)) for n in range(300)
    ]
    assert {target.id for target in picks if target} == {steady.id}


def test_targets_whose_probe_failed_are_used_only_when_nothing_else_is_left() -> None:
    sick = TargetEntry(
        id=3, pool_id=1, name="sick", protocol="openai", base_url="http://s", weight=100, probe_healthy=False
    )
    picks = [pick_target([sick, B], available={2, 3}, rng=random.Random(n)) for n in range(100)]
    assert {target.name for target in picks if target} == {"b"}
    assert pick_target([sick, B], available={3}) == sick


def test_a_retry_avoids_the_target_that_just_failed_and_none_means_no_healthy_backend() -> None:
    assert pick_target([A, B], available=ALL, exclude={A.id}) == B
    assert pick_target([A, B], available=ALL, exclude={A.id, B.id}) is None
    assert pick_target([A, B], available=Availability()) is None
    assert pick_target([], available=ALL) is None
