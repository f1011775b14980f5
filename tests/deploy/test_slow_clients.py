"""Slow clients are closed by the server: the app served as deploy/run-multi serves it (gunicorn with
portal.serving.PortalUvicornWorker) on a loopback port, with 3-second deadlines for the request head and the body.

50 connections send the head of `GET /accounts/login/` one byte every 2 seconds, 50 send the whole head of a
`POST /v1/chat/completions` and then its body one byte every 2 seconds. Before the deadlines every one of them was
still open after 40 seconds (uvicorn bounds only the idle time between requests). Now each is closed within the
deadline and a sweep's margin, and a normal request meanwhile is answered at once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings

from tests.conftest import free_port, session_database_url, start_logged_process, stop_process
from tests.gateway.conftest import reset_gateway_caches

pytestmark = [pytest.mark.slow]

DEADLINE = 3.0
MARGIN = 2.0  # the sweep runs every 0.5 s; the rest is for a busy two-core machine
TRICKLE_EVERY = 2.0
SLOW = 50
LOGIN_HEAD = b"GET /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\nAccept: text/html\r\n\r\n"
CHAT_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 200\r\n\r\n"
)
CHAT_BODY = (b'{"model": "gpt-oss-20b", "messages": [' + b" " * 200)[:200]


@dataclass
class Served:
    url: str
    port: int
    log: Path


def serve(tmp_path: Path, **env: str) -> tuple[Served, Any]:
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "portal.asgi:application",
        "-k",
        "portal.serving.PortalUvicornWorker",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
    ]
    environment = {
        "DATABASE_URL": session_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "SERVER_HEADER_TIMEOUT_SECONDS": str(DEADLINE),
        "SERVER_BODY_TIMEOUT_SECONDS": str(DEADLINE),
        "GATEWAY_INVALID_KEY_LIMIT": "1000000",  # the key-less slow bodies would otherwise earn 127.0.0.1 a 429
        **env,
    }
    process = start_logged_process(args, port, log, environment)
    served = Served(url=f"http://127.0.0.1:{port}", port=port, log=log)
    httpx.get(f"{served.url}/healthz", timeout=20).raise_for_status()  # warm: Django's first request imports a lot
    return served, process


@pytest.fixture
def served(django_db_setup: Any, tmp_path: Path) -> Iterator[Served]:
    server, process = serve(tmp_path)
    yield server
    stop_process(process)
    reset_gateway_caches()  # the key-less slow bodies counted as invalid keys from 127.0.0.1, in the shared Redis


@dataclass
class Closed:
    after: float | None  # seconds from connecting until the server closed; None if still open at the limit
    answer: bytes


async def trickle(port: int, head: bytes, body: bytes, limit: float) -> Closed:
    """Send `head` byte by byte, or all of it and then `body` byte by byte, every TRICKLE_EVERY seconds, until the
    server closes the connection or `limit` seconds have passed."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = b""
    slow = body or head
    if body:
        writer.write(head)
    try:
        for index in range(len(slow)):
            writer.write(slow[index : index + 1])
            await writer.drain()
            until = time.monotonic() + TRICKLE_EVERY
            while (left := until - time.monotonic()) > 0:
                try:
                    data = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    break
                if not data:
                    return Closed(time.monotonic() - started, answer)
                answer += data
            if time.monotonic() - started > limit:
                return Closed(None, answer)
    except (ConnectionResetError, BrokenPipeError):
        return Closed(time.monotonic() - started, answer)
    finally:
        writer.close()
    return Closed(None, answer)


async def slow_clients_and_one_normal(served: Served) -> tuple[list[Closed], list[Closed], list[float]]:
    limit = DEADLINE + MARGIN + TRICKLE_EVERY
    heads = [asyncio.create_task(trickle(served.port, LOGIN_HEAD, b"", limit)) for _ in range(SLOW)]
    bodies = [asyncio.create_task(trickle(served.port, CHAT_HEAD, CHAT_BODY, limit)) for _ in range(SLOW)]
    await asyncio.sleep(1.0)  # every slow connection is open and trickling
    normal: list[float] = []
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as client:
        for path in ("/healthz", "/accounts/login/"):
            started = time.monotonic()
            response = await client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            normal.append(time.monotonic() - started)
        started = time.monotonic()
        refused = await client.post("/v1/chat/completions", json={"model": "gpt-oss-20b", "messages": []})
        assert refused.status_code == 401  # a whole body sent at once is read as before (no key: 401)
        normal.append(time.monotonic() - started)
    return list(await asyncio.gather(*heads)), list(await asyncio.gather(*bodies)), normal


def test_slow_heads_and_bodies_are_closed_within_the_deadline_while_normal_requests_go_on(served: Served) -> None:
    heads, bodies, normal = asyncio.run(slow_clients_and_one_normal(served))

    for name, closed in (("head", heads), ("body", bodies)):
        open_ones = [c for c in closed if c.after is None]
        assert not open_ones, f"{len(open_ones)} slow {name} connections were still open"
        times = sorted(c.after for c in closed if c.after is not None)
        # Every one is closed by the deadline (plus the sweep and a busy machine's margin); most not before it. A
        # key-less body is answered 401 before it is read, and on a loaded machine the server may drop such a
        # connection a little early: closing a slow client early is never the fault this guards against.
        middle = times[len(times) // 2]
        assert middle >= DEADLINE - 0.5 and times[-1] <= DEADLINE + MARGIN, (name, times[0], middle, times[-1])
    # A client still sending its head is told why; a stalled body is cut (the application saw it disconnect).
    assert all(c.answer.startswith(b"HTTP/1.1 408 ") for c in heads), heads[0].answer[:100]
    assert max(normal) < 2.0, normal
    assert "closed 50 connections" in served.log.read_text() or "closed 100 connections" in served.log.read_text()


def test_a_request_head_over_64_kib_is_refused_with_431(served: Served) -> None:
    async def send() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer

    answer = asyncio.run(send())
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert answer.endswith(b"The request head is larger than 64 KiB.")
    assert httpx.get(f"{served.url}/healthz", headers={"X-Pad": "a" * 30_000}).status_code == 200


def test_past_the_connection_cap_a_request_gets_503_at_once_and_service_returns(
    django_db_setup: Any, tmp_path: Path
) -> None:
    server, process = serve(tmp_path, SERVER_MAX_CONNECTIONS="10")
    try:

        async def run() -> tuple[int, float, int]:
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(10)]
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                started = time.monotonic()
                refused = (await client.get("/healthz")).status_code
                waited = time.monotonic() - started
                await asyncio.sleep(DEADLINE + MARGIN)  # the idle ones pass their head deadline and are closed
                served_again = (await client.get("/healthz", headers={"Connection": "close"})).status_code
            for _, writer in idle:
                writer.close()
            return refused, waited, served_again

        refused, waited, served_again = asyncio.run(run())
        assert refused == 503
        assert waited < 1.0
        assert served_again == 200
    finally:
        stop_process(process)
