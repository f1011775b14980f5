"""What only the in-process engine has to get right: forgetting idle organizations, and threads."""

from __future__ import annotations

import asyncio
import threading

from billing.admission.memory_engine import MemoryAdmissionEngine
from billing.admission.types import Limit
from tests.billing.test_admission_contract import MINUTE, PLAN, T0, WEEK


class FakeClock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


def test_an_idle_organization_costs_nothing_once_its_windows_have_passed() -> None:
    clock = FakeClock()
    engine = MemoryAdmissionEngine(expiry_clock=clock)
    minute_only = [Limit("key_rate", "key:42:rate", 3, MINUTE)]
    asyncio.run(engine.admit(scope="7", limits=minute_only, cost=1, now_ms=T0))
    asyncio.run(engine.admit(scope="8", limits=PLAN, cost=1, now_ms=T0))
    assert engine.counter_count() == 4

    clock.seconds += 2 * MINUTE / 1000  # organization 7 has been idle for longer than its window
    asyncio.run(engine.admit(scope="9", limits=minute_only, cost=1, now_ms=T0 + 2 * MINUTE))

    # 7's counter is gone; 8's org allowances (5 hours, a week) are still running, its key's minute is not.
    assert engine.counter_count() == 3
    assert engine.status_sync(scope="8", limits=PLAN, now_ms=T0 + 2 * MINUTE)[2].used == 1

    clock.seconds += (WEEK + WEEK // 100) / 1000 + 60  # a week, one bucket of lateness, and slack
    asyncio.run(engine.admit(scope="9", limits=minute_only, cost=1, now_ms=T0 + WEEK))
    assert engine.counter_count() == 1


def test_threads_sharing_one_key_are_admitted_exactly_up_to_the_limit() -> None:
    engine = MemoryAdmissionEngine()
    limits = [Limit("key_rate", "key:42:rate", 100, MINUTE), Limit("short", "org:short", 1000, 5 * 3_600_000)]
    admitted: list[int] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()

        async def attempts() -> int:
            results = [await engine.admit(scope="7", limits=limits, cost=1, now_ms=T0 + step) for step in range(60)]
            # Pages read while requests are admitted; a read must never block or change a decision.
            engine.status_sync(scope="7", limits=limits, now_ms=T0 + 60)
            return sum(decision.admitted for decision in results)

        admitted.append(asyncio.run(attempts()))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(admitted) == 8 and sum(admitted) == 100
    assert [state.used for state in engine.status_sync(scope="7", limits=limits, now_ms=T0 + 60)] == [100, 100]
