"""Admission engine benchmark: decisions per second, p50/p99 latency and counter memory, against a local Redis.

    .venv/bin/python bench/admission.py [--redis-url redis://127.0.0.1:6379/14] [--seconds 2] [--tasks 32]

Loopback Redis only (the numbers are meant to show the engine, not a network). Every scenario stops after a fixed
number of calls or its time budget, whichever comes first, so a run takes about 20 s. It writes only keys under
`adm:{org:bench-...}` and deletes them at the end. Results are in docs/admission.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from billing.admission import Limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
WEEK_MS = 7 * 24 * HOUR_MS
MAX_CALLS = 20_000


@dataclass
class Result:
    name: str
    calls: int
    seconds: float
    latencies_ns: list[int]
    redis_us: float = 0.0

    def row(self) -> str:
        ordered = sorted(self.latencies_ns)
        p50 = ordered[len(ordered) // 2] / 1e6
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1e6
        rate = self.calls / self.seconds
        redis_us = f"{self.redis_us:.0f}" if self.redis_us else "-"
        return f"| {self.name} | {self.calls:,} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {redis_us} |"


def setup_django(redis_url: str) -> None:
    host = urlsplit(redis_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to benchmark a non-loopback Redis ({host!r})")
    os.environ["REDIS_URL"] = redis_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def plan_limits(scale: int) -> list[Limit]:
    """The free plan (20 a minute per key; 200 per 5 hours and 1000 a week per organization), times `scale`."""
    from billing.admission import Limit

    return [
        Limit("key_rate", "key:1:rate", 20 * scale, MINUTE_MS),
        Limit("short", "org:short", 200 * scale, 5 * HOUR_MS),
        Limit("weekly", "org:weekly", 1000 * scale, WEEK_MS),
    ]


Call = Callable[[int], Awaitable[object]]


async def measure(name: str, call: Call, budget_s: float, tasks: int = 1) -> Result:
    """Run `call(i)` from `tasks` concurrent tasks until MAX_CALLS or the budget; latency is per call, so with many
    tasks it includes the wait for the connection pool and the event loop."""
    from portal.redis import sync_redis

    latencies: list[int] = []
    calls_before, usec_before = script_totals(sync_redis())
    start = time.perf_counter()
    deadline = start + budget_s

    async def worker() -> None:
        while len(latencies) < MAX_CALLS and time.perf_counter() < deadline:
            began = time.perf_counter_ns()
            await call(len(latencies))
            latencies.append(time.perf_counter_ns() - began)

    await asyncio.gather(*(worker() for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    calls_after, usec_after = script_totals(sync_redis())
    scripts = calls_after - calls_before
    redis_us = (usec_after - usec_before) / scripts if scripts >= len(latencies) // 2 else 0.0
    return Result(name, len(latencies), elapsed, latencies, redis_us)


def fill_every_bucket(engine: Any, scope: str, limits: list[Limit], now: int, per_bucket: int) -> None:
    """The worst case for the script: every counter holds one live bucket per width across its whole window."""
    from billing.admission.window import BUCKETS_PER_WINDOW, bucket_width

    for limit in limits:
        width = bucket_width(limit.window_ms)
        events = [(now - step * width, per_bucket) for step in range(BUCKETS_PER_WINDOW)]
        engine.raise_sync(scope=scope, limit=limit, events=events, now_ms=now)


def script_totals(client: Any) -> tuple[int, int]:
    """(calls, microseconds) Redis has spent in EVALSHA since it started; a difference of two readings is this run's
    (plus whatever else used EVALSHA on the same server meanwhile)."""
    entry = client.info("commandstats").get("cmdstat_evalsha", {})
    return int(entry.get("calls", 0)), int(entry.get("usec", 0))


async def run_speed(budget_s: float, tasks: int) -> list[Result]:
    from billing.admission.memory_engine import MemoryAdmissionEngine
    from billing.admission.redis_engine import RedisAdmissionEngine
    from portal.redis import async_redis

    engine = RedisAdmissionEngine()
    client = async_redis()
    assert client is not None
    await client.ping()
    results: list[Result] = []
    scopes: list[str] = []
    base = int(time.time() * 1000)

    def new_scope() -> str:
        scopes.append(f"bench-{uuid.uuid4().hex[:12]}")
        return scopes[-1]

    async def fill(scope: str, limits: list[Limit]) -> None:
        await asyncio.to_thread(fill_every_bucket, engine, scope, limits, base, 1)

    # The plan at 100x, synthetic time moving 40 ms a call, so windows roll and buckets expire during the run.
    light, light_limits = new_scope(), plan_limits(100)
    results.append(
        await measure(
            "admit, light counters, time moving (admitted)",
            lambda i: engine.admit(scope=light, limits=light_limits, cost=1, now_ms=base + 40 * i),
            budget_s,
        )
    )
    # The script's worst case: 121 live buckets in each of the three counters.
    full, full_limits = new_scope(), plan_limits(10_000)
    await fill(full, full_limits)
    results.append(
        await measure(
            "admit, 3 counters x 121 live buckets (admitted)",
            lambda i: engine.admit(scope=full, limits=full_limits, cost=1, now_ms=base + i % 400),
            budget_s,
        )
    )
    # A client hammering past its limit: the usual 429.
    at_limit, at_limit_limits = new_scope(), plan_limits(1)
    for step in range(20):
        await engine.admit(scope=at_limit, limits=at_limit_limits, cost=1, now_ms=base - step * 2_000)
    results.append(
        await measure(
            "admit, key at its limit, cost 1 (refused)",
            lambda i: engine.admit(scope=at_limit, limits=at_limit_limits, cost=1, now_ms=base),
            budget_s,
        )
    )
    # A weighted request refused by a full counter: the retry time needs a walk over every bucket.
    heavy, heavy_limits = new_scope(), [replace(plan_limits(1)[0], limit=121), *plan_limits(100)[1:]]
    await fill(heavy, heavy_limits[:1])
    results.append(
        await measure(
            "admit, key at its limit over 121 buckets, cost 3 (refused)",
            lambda i: engine.admit(scope=heavy, limits=heavy_limits, cost=3, now_ms=base),
            budget_s,
        )
    )
    # One worker's many tasks, each for a different organization: no hot key.
    many, many_limits = [new_scope() for _ in range(tasks)], plan_limits(100)
    results.append(
        await measure(
            f"admit, {tasks} concurrent tasks, different organizations",
            lambda i: engine.admit(scope=many[i % tasks], limits=many_limits, cost=1, now_ms=base + i // tasks),
            budget_s,
            tasks,
        )
    )
    # Every task on one key: the calls serialize on the same counters inside Redis.
    hot, hot_limits = new_scope(), plan_limits(10_000)
    results.append(
        await measure(
            f"admit, {tasks} concurrent tasks, one hot key",
            lambda i: engine.admit(scope=hot, limits=hot_limits, cost=1, now_ms=base + i // 10),
            budget_s,
            tasks,
        )
    )
    results.append(
        await measure(
            "status, 3 counters x 121 live buckets",
            lambda i: engine.status(scope=full, limits=full_limits, now_ms=base),
            budget_s,
        )
    )
    memory, memory_engine = new_scope(), MemoryAdmissionEngine()
    results.append(
        await measure(
            "in-process engine: admit, light counters",
            lambda i: memory_engine.admit(scope=memory, limits=light_limits, cost=1, now_ms=base + 40 * i),
            budget_s / 2,
        )
    )
    for scope in scopes:
        await asyncio.to_thread(engine.reset_sync, scope=scope)
    return results


def run_memory() -> list[str]:
    """MEMORY USAGE of one counter filled to its limit with requests spread evenly over the window (every bucket
    live: the most a counter can hold), for the chosen buckets and for an exact sliding log, at 1x and 100x."""
    from billing.admission.keys import counter_key
    from billing.admission.redis_engine import RedisAdmissionEngine
    from portal.redis import sync_redis

    client = sync_redis()
    assert client is not None
    engine = RedisAdmissionEngine()
    scope = f"bench-{uuid.uuid4().hex[:12]}"
    now = int(time.time() * 1000)
    rows = []
    try:
        for scale in (1, 100):
            for limit in plan_limits(scale):
                spacing = limit.window_ms / limit.limit
                events = [(now - int(i * spacing), 1) for i in range(limit.limit)]
                engine.raise_sync(scope=scope, limit=limit, events=events, now_ms=now)
                key = counter_key(scope, limit)
                buckets_bytes = client.memory_usage(key, samples=0)
                fields = client.hlen(key)
                encoding = client.object("encoding", key)
                log_key = f"{key}:exact-log"
                pipe = client.pipeline(transaction=False)
                for i, (at, _) in enumerate(events):
                    # An exact log needs one member per request: the time plus a request id to keep members apart.
                    pipe.zadd(log_key, {f"{at}:{i:012d}": at})
                    if i % 5000 == 4999:
                        pipe.execute()
                pipe.execute()
                log_bytes = client.memory_usage(log_key, samples=0)
                client.unlink(key, log_key)
                rows.append(
                    f"| {scale}x | {limit.name} {limit.limit:,}/{limit.window_ms // 1000:,} s | {fields} "
                    f"({encoding!s}) | {buckets_bytes:,} | {log_bytes:,} |"
                )
    finally:
        engine.reset_sync(scope=scope)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget per scenario")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent tasks in the concurrent scenarios")
    options = parser.parse_args()
    setup_django(options.redis_url)
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    from portal.redis import sync_redis

    client = sync_redis()
    assert client is not None
    server = client.info("server")
    print(f"Redis {server['redis_version']} on {options.redis_url}; {os.cpu_count()} CPUs; {loop_name}")
    print()
    results = asyncio.run(run_speed(options.seconds, options.tasks))
    print("| scenario | calls | decisions/s | p50 ms | p99 ms | Redis us/call |")
    print("|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    print()
    print("| plan | counter | hash fields (encoding) | bytes, buckets | bytes, exact log |")
    print("|---|---|---|---|---|")
    for row in run_memory():
        print(row)


if __name__ == "__main__":
    main()
