"""Gateway benchmark: in ONE run, against the same sandbox backend and the same load generator (wrk), measure
(a) the backend direct, (b) a minimal forwarding ASGI proxy (the floor), (c) the gateway with a real key, Redis and
PostgreSQL — one worker each — at 1 and 32 connections, plus each server's CPU time per request at 32 connections and
streaming time to first byte.

    .venv/bin/python bench/gateway.py [--duration 5] [--rounds 3] [--database-url postgres://...]

Each cell of the table is the median over the rounds, which alternate the three targets so that a slow spell of a
shared machine falls on all of them; the ratios are taken per round and their median printed with every round's.

Needs wrk (Debian: apt-get install wrk), PostgreSQL and Redis on loopback. Every server it starts listens on
127.0.0.1 and is stopped at the end; every load run is bounded by --duration.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ROUTER_KEY = "bench-router-key"
CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "Say hello in five words."}], "max_tokens": 16}
CORTENSOR = {"prompt": "user: Say hello in five words.\nassistant:", "max_tokens": 16}

FLOOR_PROXY = '''
"""The floor: the least a forwarding proxy can do (raw ASGI, one aiohttp session, no checks)."""
import os
import aiohttp

UPSTREAM = os.environ["BENCH_UPSTREAM"]
KEY = os.environ["BENCH_ROUTER_KEY"]
session = None

async def app(scope, receive, send):
    global session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if session:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with session.post(UPSTREAM, data=body, headers={"Authorization": "Bearer " + KEY,
                                                          "Content-Type": "application/json"}) as response:
        payload = await response.read()
        await send({"type": "http.response.start", "status": response.status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited early (code {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listened on {port}")


def start(args: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port, process)
    return process


def wrk(
    url: str, body: dict[str, object], connections: int, duration: int, headers: dict[str, str]
) -> dict[str, float]:
    script = textwrap.dedent(f"""
        wrk.method = "POST"
        wrk.body = {json.dumps(json.dumps(body))}
        wrk.headers["Content-Type"] = "application/json"
        {"".join(f'wrk.headers["{k}"] = "{v}"' + chr(10) for k, v in headers.items())}
    """)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = min(connections, 2)
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", "-s", handle.name, url],
        capture_output=True,
        text=True,
        timeout=duration + 30,
        check=True,
    )
    os.unlink(handle.name)
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    percentiles = {}
    for name, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE):
        factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
        percentiles[name] = float(value) * factor
    return {
        "rps": rps,
        "p50": percentiles.get("50", float("nan")),
        "p99": percentiles.get("99", float("nan")),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ttfb(url: str, body: dict[str, object], headers: dict[str, str], samples: int = 60) -> float:
    """Median time from sending a streaming request to its first body byte, in ms."""
    times = []
    with httpx.Client(timeout=10) as client:
        for _ in range(samples):
            started = time.perf_counter()
            with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as response:
                chunks = response.iter_raw()
                next(chunks)
                times.append((time.perf_counter() - started) * 1000)
                for _ in chunks:
                    pass
    return statistics.median(times)


def prepare_database(env: dict[str, str], sandbox_url: str) -> str:
    """Migrate the bench database, load a catalog routed at the sandbox, and make a key with room to spare."""
    subprocess.run([PY, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    catalog = textwrap.dedent(f"""
        plans:
          - slug: bench
            name: Bench
            default: true
            key_rate_limit: {{requests: 1000000000, window_seconds: 60}}
            allowances:
              - {{name: short, requests: 1000000000, window_seconds: 18000}}
              - {{name: weekly, requests: 2000000000, window_seconds: 604800}}
            models: ["*"]
            over_limit: deny
        pools:
          - slug: bench
            name: Bench sandbox
            targets:
              - name: sandbox
                url: "{sandbox_url}"
                protocol: cortensor
                session_id: 7
                api_key_env: BENCH_ROUTER_KEY
        models:
          - {{alias: gpt-oss-20b, pool: bench, family: oss, weight: 1}}
    """)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(catalog)
    subprocess.run(
        [PY, "manage.py", "catalog", "apply", handle.name], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
    )
    os.unlink(handle.name)
    result = subprocess.run(
        [PY, "manage.py", "createapikey", "--email", "bench@example.com", "--name", "bench"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=5, help="seconds per load run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the three targets (default 3)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_bench"),
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
        help="a Redis database of the benchmark's own: it is emptied first, so earlier runs' usage stream and "
        "counters do not weigh on this one",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    import redis

    redis.Redis.from_url(args.redis_url).flushdb()
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {args.database_url.rsplit('/', 1)[1]}"],
        capture_output=True,
    )

    sandbox_port, floor_port, gateway_port = free_port(), free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "BENCH_ROUTER_KEY": ROUTER_KEY,
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    full_env = {**os.environ, **env}
    processes = []
    try:
        processes.append(
            start(
                [PY, "manage.py", "run_sandbox_router", "--port", str(sandbox_port), "--key", ROUTER_KEY],
                sandbox_port,
                env,
            )
        )
        secret = prepare_database(full_env, sandbox_url)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "floor_proxy.py").write_text(FLOOR_PROXY)
            processes.append(
                start(
                    [
                        PY,
                        "-m",
                        "uvicorn",
                        "floor_proxy:app",
                        "--app-dir",
                        folder,
                        "--port",
                        str(floor_port),
                        "--loop",
                        "uvloop",
                        "--http",
                        "httptools",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    floor_port,
                    {"BENCH_UPSTREAM": f"{sandbox_url}/api/v1/completions/7", "BENCH_ROUTER_KEY": ROUTER_KEY},
                )
            )
            processes.append(
                start(
                    [
                        PY,
                        "-m",
                        "uvicorn",
                        "portal.asgi:application",
                        "--port",
                        str(gateway_port),
                        "--loop",
                        "uvloop",
                        "--http",
                        "httptools",
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    gateway_port,
                    env,
                )
            )
            direct = (f"{sandbox_url}/api/v1/completions/7", CORTENSOR, {"Authorization": f"Bearer {ROUTER_KEY}"})
            floor = (f"http://127.0.0.1:{floor_port}/", CORTENSOR, {})
            gateway = (
                f"http://127.0.0.1:{gateway_port}/v1/chat/completions",
                CHAT,
                {"Authorization": f"Bearer {secret}"},
            )
            check = httpx.post(gateway[0], json=CHAT, headers=gateway[2], timeout=10)
            if check.status_code != 200:
                raise SystemExit(f"the gateway refused the bench request: {check.status_code} {check.text}")
            targets = {"backend direct": direct, "floor proxy": floor, "gateway": gateway}
            servers = dict(zip(targets, (processes[0].pid, processes[1].pid, processes[2].pid), strict=True))
            for url, body, headers in targets.values():
                wrk(url, body, 8, 2, headers)  # warm-up: connections, caches, pools
            # Rounds alternate the targets, so a slow spell of the shared machine falls on all three, not on one.
            runs: dict[str, dict[int, list[dict[str, float]]]] = {name: {1: [], 32: []} for name in targets}
            for _ in range(args.rounds):
                for connections in (1, 32):
                    for name, (url, body, headers) in targets.items():
                        before = cpu_seconds(servers[name])
                        result = wrk(url, body, connections, args.duration, headers)
                        # The server's own CPU per request: what bounds one worker's throughput once it is saturated.
                        result["cpu_us"] = (cpu_seconds(servers[name]) - before) / (result["rps"] * args.duration) * 1e6
                        runs[name][connections].append(result)
            stream_direct = ttfb(f"{sandbox_url}/api/v1/completions/7", CORTENSOR, direct[2])
            # The floor does not stream (it reads the whole answer, then sends it), but with the sandbox's instant
            # tokens its first byte is what one proxy hop costs this client: the reference the gateway's is read by.
            stream_floor = ttfb(floor[0], CORTENSOR, {})
            stream_gateway = ttfb(gateway[0], CHAT, gateway[2])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    rows = {name: {c: _median_run(results) for c, results in by_c.items()} for name, by_c in runs.items()}
    print(
        f"\nGateway benchmark — {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, one worker each, "
        f"wrk {args.duration} s per run, median of {args.rounds} alternating rounds\n"
    )
    print("| target | req/s @1 | p50 @1 (ms) | p99 @1 (ms) | req/s @32 | p50 @32 (ms) | p99 @32 (ms) | non-2xx |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in rows.items():
        one, many = result[1], result[32]
        print(
            f"| {name} | {one['rps']:,.0f} | {one['p50']:.2f} | {one['p99']:.2f} | {many['rps']:,.0f} | "
            f"{many['p50']:.2f} | {many['p99']:.2f} | {int(one['errors'] + many['errors'])} |"
        )
    gw, fl, di = runs["gateway"], runs["floor proxy"], runs["backend direct"]
    ratios = [g["rps"] / f["rps"] for g, f in zip(gw[32], fl[32], strict=True)]
    ratios_1 = [g["rps"] / f["rps"] for g, f in zip(gw[1], fl[1], strict=True)]
    added = [g["p50"] - d["p50"] for g, d in zip(gw[1], di[1], strict=True)]
    print(
        f"\ngateway / floor throughput at 32 connections: {statistics.median(ratios):.0%} (target ≥ 50%); "
        f"rounds: {', '.join(f'{r:.0%}' for r in ratios)}"
    )
    print(
        f"gateway / floor throughput at 1 connection: {statistics.median(ratios_1):.0%}; "
        f"rounds: {', '.join(f'{r:.0%}' for r in ratios_1)}"
    )
    print(
        f"added p50 at 1 connection over direct: {statistics.median(added):.2f} ms (target ≤ 1 ms); "
        f"rounds: {', '.join(f'{a:.2f}' for a in added)}"
    )
    print(
        "server CPU per request at 32 connections (median of the rounds): "
        + ", ".join(f"{name} {statistics.median(r['cpu_us'] for r in by_c[32]):.0f} µs" for name, by_c in runs.items())
    )
    print(
        f"streaming time to first byte (median of 60, httpx): direct {stream_direct:.2f} ms, "
        f"floor proxy {stream_floor:.2f} ms, gateway {stream_gateway:.2f} ms"
    )


def _median_run(results: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds; errors are summed (any non-2xx answer is worth seeing)."""
    merged = {key: statistics.median(result[key] for result in results) for key in ("rps", "p50", "p99")}
    merged["errors"] = sum(result["errors"] for result in results)
    return merged


if __name__ == "__main__":
    main()
