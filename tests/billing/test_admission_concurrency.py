"""No over-admission under real concurrency: several OS processes, each with many asyncio tasks, against one key in
the real Redis. The limit is L; exactly L requests get in, and the organization's allowance counts exactly L."""

from __future__ import annotations

import multiprocessing
import os
import random
import uuid
from multiprocessing.synchronize import Barrier

import pytest
from django.conf import settings

from billing.admission.redis_engine import RedisAdmissionEngine
from billing.admission.types import Limit

PROCESSES = 3
TASKS = 40
ATTEMPTS_PER_TASK = 15
LIMIT = 150
T0 = 1_800_000_000_000
MINUTE = 60_000


def plan(limit: int) -> list[Limit]:
    return [
        Limit("key_rate", "key:42:rate", limit, MINUTE),
        Limit("short", "org:short", 10 * limit, 5 * 60 * MINUTE),
        Limit("weekly", "org:weekly", 100 * limit, 7 * 24 * 60 * MINUTE),
    ]


def hammer(redis_url: str, scope: str, start: Barrier, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One gateway worker: TASKS concurrent tasks, each asking ATTEMPTS_PER_TASK times within half a window."""
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import asyncio

    import django

    django.setup()
    engine = RedisAdmissionEngine()
    limits = plan(LIMIT)

    async def task(rng: random.Random) -> list[bool]:
        outcomes = []
        for _ in range(ATTEMPTS_PER_TASK):
            # Spread over 30 s of a 60 s window: every unit admitted is still counted when the last one asks.
            now = T0 + rng.randrange(30_000)
            decision = await engine.admit(scope=scope, limits=limits, cost=1, now_ms=now)
            assert not decision.degraded
            outcomes.append(decision.admitted)
        return outcomes

    async def worker() -> tuple[int, int]:
        rngs = [random.Random(f"{os.getpid()}-{index}") for index in range(TASKS)]
        start.wait(timeout=60)  # every process starts together
        outcomes = await asyncio.gather(*(task(rng) for rng in rngs))
        flat = [admitted for task_outcomes in outcomes for admitted in task_outcomes]
        return len(flat), sum(flat)

    results.put(asyncio.run(worker()))


@pytest.mark.slow
@pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL")
def test_processes_and_tasks_hammering_one_key_get_exactly_the_limit_in() -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    scope = f"t-{uuid.uuid4().hex[:16]}"
    workers = [
        context.Process(target=hammer, args=(settings.REDIS_URL, scope, start, results)) for _ in range(PROCESSES)
    ]
    engine = RedisAdmissionEngine()
    try:
        for process in workers:
            process.start()
        reports = [results.get(timeout=90) for _ in workers]
        for process in workers:
            process.join(timeout=30)

        attempts = sum(count for count, _ in reports)
        admitted = sum(count for _, count in reports)
        assert [process.exitcode for process in workers] == [0] * PROCESSES
        assert attempts == PROCESSES * TASKS * ATTEMPTS_PER_TASK
        assert admitted == LIMIT
        used = [state.used for state in engine.status_sync(scope=scope, limits=plan(LIMIT), now_ms=T0 + 30_000)]
        assert used == [LIMIT, LIMIT, LIMIT]  # all or nothing held under contention too
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
        engine.reset_sync(scope=scope)
