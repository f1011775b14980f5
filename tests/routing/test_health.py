"""Passive health, one contract for both boards (in-process and Redis), plus what only the shared board does."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from portal.redis import reset_clients, sync_redis
from routing.health import (
    BoardSettings,
    HealthBoard,
    MemoryHealthBoard,
    RedisHealthBoard,
    counts_as_failure,
    health_board,
)
from tests.routing.conftest import Clock, Run, needs_redis

T1, T2, T3 = 101, 102, 103


def test_three_failures_in_a_row_eject_a_target(board: HealthBoard, run: Run) -> None:
    assert run(board.record_failure(T1)) is False
    assert run(board.record_failure(T1)) is False
    assert run(board.available([T1, T2])) == {T1, T2}
    assert run(board.record_failure(T1)) is True
    assert run(board.available([T1, T2])) == {T2}


def test_a_success_between_failures_starts_the_count_again(board: HealthBoard, run: Run) -> None:
    run(board.record_failure(T1))
    run(board.record_failure(T1))
    run(board.available([T1]))
    run(board.record_success(T1))
    run(board.record_failure(T1))
    run(board.record_failure(T1))
    assert T1 in run(board.available([T1]))


def test_after_the_cooldown_exactly_one_request_is_the_trial_and_a_success_restores_the_target(
    board: HealthBoard, run: Run, clock: Clock
) -> None:
    for _ in range(3):
        run(board.record_failure(T1))
    clock.advance(29.9)
    assert T1 not in run(board.available([T1, T2]))
    clock.advance(0.1)
    first = run(board.available([T1, T2]))
    assert first.trial == T1 and first == {T1, T2}
    for _ in range(5):  # other requests while the trial is underway
        later = run(board.available([T1, T2]))
        assert later.trial is None and later == {T2}
    run(board.record_success(T1))
    assert run(board.available([T1, T2])) == {T1, T2}
    assert run(board.available([T1, T2])).trial is None


def test_a_failed_trial_means_another_full_cooldown(board: HealthBoard, run: Run, clock: Clock) -> None:
    for _ in range(3):
        run(board.record_failure(T1))
    clock.advance(30)
    assert run(board.available([T1])).trial == T1
    assert run(board.record_failure(T1)) is True
    clock.advance(29)
    assert run(board.available([T1])) == set()
    clock.advance(1)
    assert run(board.available([T1])).trial == T1


def test_a_trial_that_never_reports_is_handed_out_again_after_its_lease(
    board: HealthBoard, run: Run, clock: Clock
) -> None:
    for _ in range(3):
        run(board.record_failure(T1))
    clock.advance(30)
    assert run(board.available([T1])).trial == T1
    clock.advance(59)
    assert run(board.available([T1])).trial is None
    clock.advance(1)
    assert run(board.available([T1])).trial == T1


def test_late_answers_from_before_the_ejection_do_not_change_it(board: HealthBoard, run: Run, clock: Clock) -> None:
    for _ in range(3):
        run(board.record_failure(T1))
    run(board.available([T1]))
    clock.advance(20)
    assert run(board.record_failure(T1)) is False  # does not extend the cooldown
    run(board.record_success(T1))  # does not end it early either
    assert T1 not in run(board.available([T1]))
    clock.advance(10)
    assert run(board.available([T1])).trial == T1


def test_the_operator_can_see_failures_and_ejections(board: HealthBoard, run: Run, clock: Clock) -> None:
    run(board.record_failure(T1))
    for _ in range(3):
        run(board.record_failure(T2))
    states = board.describe_sync([T1, T2, T3])
    assert states[T1].failures == 1 and states[T1].ejected_until is None
    assert states[T2].ejected_until == pytest.approx(clock.now + 30)
    assert T3 not in states
    board.forget_sync([T1, T2])
    assert board.describe_sync([T1, T2]) == {}


@pytest.mark.parametrize(("status", "failure"), [(None, True), (500, True), (503, True), (429, False), (400, False)])
def test_what_counts_as_a_failure(status: int | None, failure: bool) -> None:
    assert counts_as_failure(status) is failure


@needs_redis
def test_an_ejection_by_one_worker_holds_for_every_worker(
    redis_board: RedisHealthBoard, run: Run, clock: Clock
) -> None:
    board = redis_board
    other = RedisHealthBoard(board.config, clock=clock, prefix=board.key.removesuffix("{routing-health}"))
    run(board.record_failure(T1))
    run(other.record_failure(T1))
    assert run(other.record_failure(T1)) is True
    assert T1 not in run(board.available([T1]))
    clock.advance(30)
    trials = [run(worker.available([T1])).trial for worker in (board, other, board, other)]
    assert trials == [T1, None, None, None]


@needs_redis
def test_a_success_seen_by_another_worker_resets_the_shared_count(redis_board: RedisHealthBoard, run: Run) -> None:
    board = redis_board
    other = RedisHealthBoard(board.config, clock=board.clock, prefix=board.key.removesuffix("{routing-health}"))
    run(board.record_failure(T1))
    run(board.record_failure(T1))
    run(other.available([T1]))  # the other worker routes a request to T1, which succeeds
    run(other.record_success(T1))
    assert run(board.record_failure(T1)) is False
    assert T1 in run(board.available([T1]))


@needs_redis
def test_each_call_is_at_most_one_round_trip_and_a_healthy_success_is_free(
    redis_board: RedisHealthBoard, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    board = redis_board
    calls: list[str] = []
    real = board._run

    async def counting(name: str, args: list[str]) -> Any:
        calls.append(name)
        return await real(name, args)

    monkeypatch.setattr(board, "_run", counting)
    run(board.available([T1, T2, T3]))
    run(board.record_success(T1))
    assert calls == ["available"], "a success on a target with nothing on record costs no round trip"
    run(board.record_failure(T1))
    run(board.record_success(T1))
    assert calls == ["available", "failure", "success"]


@needs_redis
def test_an_unreachable_redis_leaves_every_target_available_instead_of_failing_requests(run: Run, clock: Clock) -> None:
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):
        reset_clients()
        board = RedisHealthBoard(BoardSettings(3, 30.0, 60.0), clock=clock, prefix="test-routing-down:")
        assert run(board.available([T1, T2])) == {T1, T2}
        assert run(board.record_failure(T1)) is False
        run(board.record_success(T1))
        assert board.describe_sync([T1]) == {}
    reset_clients()


def test_embedded_mode_uses_the_in_process_board() -> None:
    with override_settings(REDIS_URL=""):
        assert isinstance(health_board(), MemoryHealthBoard)
    if sync_redis() is not None:
        assert isinstance(health_board(), RedisHealthBoard)
