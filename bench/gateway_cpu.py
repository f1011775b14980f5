"""CPU time per request of the gateway's ASGI application and of the floor proxy, both called in this process.

    .venv/bin/python bench/gateway_cpu.py [--requests 4000] [--rounds 3]

`bench/gateway.py` measures throughput and latency through wrk, which on a shared 2-core machine swings by tens of
percent from run to run. This measures what the gateway's own code costs: both applications are called directly
(no HTTP server in front; uvicorn's share is the same for both), against the same sandbox backend over real HTTP,
the gateway with a real key, Redis and PostgreSQL, and the process's CPU time is divided by the requests served. The
gateway / floor ratio of these numbers is what bounds the throughput ratio `bench/gateway.py` reports. A third case
runs the floor on the gateway's own upstream client (portal/netclients/http1.py) instead of aiohttp, so the cost of the
gateway's checks can be read apart from the choice of HTTP client.

Needs PostgreSQL and Redis on loopback (the same databases as bench/gateway.py, emptied Redis first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gateway as bench  # noqa: E402  (the floor proxy, the catalog and the servers are shared)

FLOOR_LEAN = '''
"""The floor proxy with the gateway's own client (portal/netclients/http1.py) in place of aiohttp: what the gateway's
checks cost, with the HTTP client taken out of the comparison."""
import os
from gateway.upstream import request_timeouts, upstream_client

UPSTREAM = os.environ["BENCH_UPSTREAM"]
HEADERS = {"Authorization": "Bearer " + os.environ["BENCH_ROUTER_KEY"], "Content-Type": "application/json"}
client = upstream_client()

async def app(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    response = await client.send("POST", UPSTREAM, HEADERS, body, request_timeouts())
    try:
        payload = await response.read()
    finally:
        response.release()
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})
'''


def _caller(app: Any, path: str, body: dict[str, object], headers: dict[str, str]) -> Callable[[], Awaitable[None]]:
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
        + [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "query_string": b"",
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }

    async def one() -> None:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{path} answered {sent[0]['status']}: {sent[-1].get('body', b'')[:300]!r}")

    return one


async def _load(one: Callable[[], Awaitable[None]], concurrency: int, total: int) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(total // concurrency) for _ in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="requests per measurement at 32 (default 4000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of floor and gateway (default 3)")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/portal_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    os.environ.update(
        {
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "BENCH_ROUTER_KEY": bench.ROUTER_KEY,
            "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
    )
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    port = bench.free_port()
    sandbox = bench.start(
        [bench.PY, "manage.py", "run_sandbox_router", "--port", str(port), "--key", bench.ROUTER_KEY], port, {}
    )
    try:
        secret = bench.prepare_database(dict(os.environ), f"http://127.0.0.1:{port}")
        os.environ["BENCH_UPSTREAM"] = f"http://127.0.0.1:{port}/api/v1/completions/7"
        import django
        import uvloop

        django.setup()
        from gateway.app import application

        floor = types.ModuleType("floor_proxy")
        exec(bench.FLOOR_PROXY, floor.__dict__)  # noqa: S102  (the benchmark's own floor proxy source)
        lean = types.ModuleType("floor_proxy_lean")
        exec(FLOOR_LEAN, lean.__dict__)  # noqa: S102  (the same floor on the gateway's own upstream client)
        cases = {
            "floor proxy": _caller(floor.app, "/", bench.CORTENSOR, {}),
            "floor proxy on the gateway's client": _caller(lean.app, "/", bench.CORTENSOR, {}),
            "gateway": _caller(application, "/v1/chat/completions", bench.CHAT, {"Authorization": f"Bearer {secret}"}),
        }
        results: dict[str, list[float]] = {name: [] for name in cases}

        async def measure() -> None:
            for one in cases.values():
                await _load(one, 8, 400)  # warm-up: connections, caches
            for _ in range(args.rounds):
                for name, one in cases.items():
                    started = time.process_time()
                    await _load(one, 32, args.requests)
                    results[name].append((time.process_time() - started) / args.requests * 1e6)

        uvloop.run(measure())
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    print(
        f"\nCPU per request at 32 concurrent requests, {args.rounds} rounds of {args.requests} — {time.strftime('%F')}"
    )
    for name, values in results.items():
        print(f"  {name}: " + ", ".join(f"{value:.0f} µs" for value in values))
    for floor_name in ("floor proxy", "floor proxy on the gateway's client"):
        ratios = [floor / gateway for floor, gateway in zip(results[floor_name], results["gateway"], strict=True)]
        print(f"  {floor_name} / gateway CPU per request: " + ", ".join(f"{ratio:.0%}" for ratio in ratios))


if __name__ == "__main__":
    main()
