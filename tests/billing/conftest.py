"""Admission fixtures: each engine under test, a scope of its own per test, and an event loop to call it from."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from django.conf import settings

from billing.admission.memory_engine import MemoryAdmissionEngine
from billing.admission.redis_engine import RedisAdmissionEngine
from billing.admission.types import AdmissionEngine
from portal.redis import aclose_clients, reset_clients

Run = Callable[[Coroutine[Any, Any, Any]], Any]

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL")


@pytest.fixture
def run() -> Iterator[Run]:
    """Run coroutines on one event loop for the whole test, closing its Redis client at the end."""
    with asyncio.Runner() as runner:
        yield runner.run

        async def close_client() -> None:
            await aclose_clients()

        runner.run(close_client())


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def engine(request: pytest.FixtureRequest) -> Iterator[AdmissionEngine]:
    if request.param == "memory":
        yield MemoryAdmissionEngine()
        return
    reset_clients()  # a client cached by an earlier test may point at a REDIS_URL that test overrode
    yield RedisAdmissionEngine()


@pytest.fixture
def scope(engine: AdmissionEngine) -> Iterator[str]:
    """An organization of this test alone: its counters never meet another test's (or another engineer's), and
    they are dropped afterwards."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    yield name
    engine.reset_sync(scope=name)
