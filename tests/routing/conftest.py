"""Routing fixtures: an event loop per test, and each health board implementation on a controlled clock."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from django.conf import settings

from portal.redis import aclose_clients, reset_clients, sync_redis
from routing.health import BoardSettings, HealthBoard, MemoryHealthBoard, RedisHealthBoard

Run = Callable[[Coroutine[Any, Any, Any]], Any]
needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def run() -> Iterator[Run]:
    """Run coroutines on one event loop for the whole test, closing its Redis client at the end."""
    with asyncio.Runner() as runner:
        yield runner.run

        async def close_client() -> None:
            await aclose_clients()

        runner.run(close_client())


@pytest.fixture
def clock() -> Clock:
    return Clock()


CONFIG = BoardSettings(eject_after=3, eject_seconds=30.0, trial_lease_seconds=60.0)


@pytest.fixture
def redis_board(clock: Clock) -> Iterator[RedisHealthBoard]:
    """The shared board under a Redis key of this test alone, deleted afterwards."""
    reset_clients()
    board = RedisHealthBoard(CONFIG, clock=clock, prefix=f"test-routing-{uuid.uuid4().hex[:12]}:")
    yield board
    client = sync_redis()
    if client is not None:
        client.delete(board.key)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def board(request: pytest.FixtureRequest, clock: Clock) -> Iterator[HealthBoard]:
    """Each board with 3 failures to eject, a 30 s cooldown and a 60 s trial lease."""
    if request.param == "memory":
        yield MemoryHealthBoard(CONFIG, clock=clock)
        return
    yield request.getfixturevalue("redis_board")
