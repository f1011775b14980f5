"""The gateway's Redis client against redis-py's: the admission round trip, the same EVALSHA, in this process.

    .venv/bin/python bench/redis_client.py [--tasks 32] [--calls 300] [--rounds 3]

Both clients run the admission script (`billing/admission/counters.lua`, `admit+journal` over three limits, as the
gateway calls it per request) against a private redis-server started on a free loopback port and stopped at the end;
the machine's Redis is not touched. On uvloop, as the gateway runs. For each client: `--tasks` concurrent tasks of
`--calls` calls each (the gateway under load), then one task alone (one request at a time). Reported per client: CPU
time of this process per call (the client's own cost; Redis's is in another process) and the p50 / p99 latency of a
call. Rounds alternate which client goes first; each cell is the median of the rounds, with their range. Results:
docs/performance.md, "The Redis client".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WEEK_MS = 7 * 24 * 3600 * 1000


def start_redis() -> tuple[subprocess.Popen[bytes], int, Path]:
    import socket

    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("needs redis-server: apt-get install redis-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    directory = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--logfile", str(directory / "redis.log")]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port, directory
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the private redis-server did not start")


def admission_call() -> tuple[str, str, list[Any]]:
    """(script source, sha, EVALSHA arguments after the sha): the gateway's admission of one request."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from billing.admission import Limit, bucket_label
    from billing.admission.keys import counter_key
    from billing.admission.scripts import LuaScript
    from billing.admission.window import EXPIRY_SLACK_MS, clock_ms

    script = LuaScript("counters.lua")
    scope = "org:bench-client"
    limits = [
        Limit("key_rate", "key:1:rate", 10**9, 60_000),
        Limit("short", "org:short", 10**9, 5 * 3600 * 1000),
        Limit("weekly", "org:weekly", 10**9, WEEK_MS),
    ]
    now = clock_ms()
    args: list[Any] = ["admit+journal", now, 1, EXPIRY_SLACK_MS]
    for limit in limits:
        args += [limit.limit, limit.window_ms, str(bucket_label(now, limit.window_ms))]
    keys = [counter_key(scope, limit) for limit in limits] + ["bench:usage:events"]
    event = b'{"type":"accepted","request_id":"req_0123456789abcdef","key":1,"org":1,"model":"llama","units":1}'
    args += [10_000, "e", event]
    return script.source, script.sha, [len(keys), *keys, *args]


async def measure(client: Any, sha: str, call_args: list[Any], tasks: int, calls: int) -> tuple[float, float, float]:
    """(CPU µs per call, p50 ms, p99 ms) of `tasks` concurrent tasks making `calls` calls each."""
    latencies: list[int] = []

    async def worker() -> None:
        for _ in range(calls):
            began = time.perf_counter_ns()
            await client.evalsha(sha, *call_args)
            latencies.append(time.perf_counter_ns() - began)

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    cpu = time.process_time() - cpu
    latencies.sort()
    return cpu / len(latencies) * 1e6, latencies[len(latencies) // 2] / 1e6, latencies[int(len(latencies) * 0.99)] / 1e6


def clients(url: str) -> dict[str, Callable[[], Any]]:
    import redis.asyncio as aioredis

    from portal.netclients.redis_pipe import PipelinedRedis

    return {
        "PipelinedRedis (portal/netclients)": lambda: PipelinedRedis(url, connect_timeout=1.0, timeout=5.0),
        "redis.asyncio.Redis (hiredis)": lambda: aioredis.Redis.from_url(url, socket_timeout=5.0, max_connections=256),
    }


async def one_client(make: Callable[[], Any], source: str, sha: str, call_args: list[Any], ns: Any) -> list[float]:
    client = make()
    try:
        await client.script_load(source)
        await measure(client, sha, call_args, ns.tasks, 20)  # warm: connections open, code paths taken
        loaded = await measure(client, sha, call_args, ns.tasks, ns.calls)
        alone = await measure(client, sha, call_args, 1, ns.calls * 4)
        return [*loaded, *alone]
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--calls", type=int, default=300, help="calls per task (at most 5000)")
    parser.add_argument("--rounds", type=int, default=3)
    ns = parser.parse_args()
    ns.calls = max(10, min(ns.calls, 5000))
    ns.tasks = max(1, min(ns.tasks, 256))
    ns.rounds = max(1, min(ns.rounds, 9))

    import hiredis
    import redis
    import uvloop

    process, port, directory = start_redis()
    url = f"redis://127.0.0.1:{port}/0"
    os.environ["REDIS_URL"] = url
    try:
        source, sha, call_args = admission_call()
        makers = clients(url)
        names = list(makers)
        results: dict[str, list[list[float]]] = {name: [] for name in names}
        for round_number in range(ns.rounds):
            order = names if round_number % 2 == 0 else names[::-1]
            for name in order:
                figures = uvloop.run(one_client(makers[name], source, sha, call_args, ns))
                results[name].append(figures)
                print(f"round {round_number + 1}: {name}: " + " ".join(f"{value:.3f}" for value in figures))
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(directory, ignore_errors=True)

    print(f"\nredis-py {redis.__version__}, hiredis {hiredis.__version__}, uvloop {uvloop.__version__}; "
          f"{ns.rounds} rounds, median (range)\n")  # fmt: skip
    header = f"{ns.tasks} tasks: CPU µs/call | p50 ms | p99 ms | 1 task: CPU µs/call | p50 ms | p99 ms"
    print(f"| client | {header} |\n|---|---|---|---|---|---|---|")
    for name in names:
        cells = []
        for column in range(6):
            values = [figures[column] for figures in results[name]]
            digits = 0 if column in (0, 3) else 3
            cells.append(f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
