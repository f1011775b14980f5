"""The gateway's pipelined Redis client against a real Redis, a closed port and a server that never answers."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from redis import exceptions as rexc

from portal.netclients.redis_pipe import PipelinedRedis

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL")


@pytest.fixture
def key() -> Iterator[str]:
    name = f"pipe-test:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(settings.REDIS_URL).delete(name)


@needs_redis
def test_concurrent_commands_get_their_own_replies_in_order(key: str) -> None:
    async def main() -> list[object]:
        client = PipelinedRedis(settings.REDIS_URL)
        try:
            return await asyncio.gather(*(client.execute("INCRBY", key, step) for step in range(1, 201)))
        finally:
            await client.aclose()

    replies = asyncio.run(main())
    # Each caller sees the counter right after its own increment: replies were matched to the right commands.
    assert replies == [sum(range(1, step + 1)) for step in range(1, 201)]


@needs_redis
def test_it_selects_the_database_named_in_the_url(key: str) -> None:
    async def main() -> None:
        client = PipelinedRedis(settings.REDIS_URL)
        await client.set(key, "here", ex=30)
        await client.aclose()

    asyncio.run(main())
    assert redis.Redis.from_url(settings.REDIS_URL).get(key) == b"here"


@needs_redis
def test_error_replies_raise_redis_pys_exception_classes(key: str) -> None:
    async def main() -> None:
        client = PipelinedRedis(settings.REDIS_URL)
        try:
            with pytest.raises(rexc.NoScriptError):
                await client.evalsha("0" * 40, 0)
            await client.set(key, "text")
            with pytest.raises(rexc.ResponseError, match="not an integer"):
                await client.execute("INCR", key)
            with pytest.raises(rexc.ResponseError):
                await client.execute_many([["GET", key], ["INCR", key]])
            assert await client.get(key) == b"text"  # the connection is still in step after errors
        finally:
            await client.aclose()

    asyncio.run(main())


@needs_redis
def test_a_connection_the_server_dropped_is_replaced_on_the_next_command(key: str) -> None:
    async def main() -> bytes | None:
        client = PipelinedRedis(settings.REDIS_URL)
        try:
            await client.set(key, "before")
            await client.execute("CLIENT", "KILL", "SKIPME", "no", "ID", await client.execute("CLIENT", "ID"))
            with pytest.raises(rexc.ConnectionError):
                for _ in range(100):  # the close reaches this side within a few loop turns
                    await client.get(key)
                    await asyncio.sleep(0.01)
            return await client.get(key)
        finally:
            await client.aclose()

    assert asyncio.run(main()) == b"before"


def test_a_closed_port_fails_fast_with_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused

        async def main() -> None:
            client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", connect_timeout=1.0)
            with pytest.raises(rexc.ConnectionError):
                await client.get("anything")

        started = time.monotonic()
        asyncio.run(main())
    assert time.monotonic() - started < 1.0


def test_a_server_that_never_answers_times_out_every_waiting_command() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        async def main() -> list[object]:
            client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", timeout=0.3)
            try:
                return await asyncio.gather(*(client.get(f"k{n}") for n in range(5)), return_exceptions=True)
            finally:
                await client.aclose()

        started = time.monotonic()
        results = asyncio.run(main())
        waited = time.monotonic() - started
    assert all(isinstance(result, rexc.TimeoutError) for result in results), results
    assert 0.25 < waited < 1.5


def test_a_cancelled_caller_does_not_shift_later_replies(key: str) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis: set REDIS_URL")

    async def main() -> tuple[object, object]:
        client = PipelinedRedis(settings.REDIS_URL)
        try:
            await client.set(key, "value")
            # BLPOP on an empty list holds the connection for 0.1 s: the GET and PING queue up behind it.
            slow = asyncio.ensure_future(client.execute("BLPOP", f"{key}:empty", "0.1"))
            await asyncio.sleep(0.02)
            slow.cancel()
            return await client.get(key), await client.execute("PING")
        finally:
            await client.aclose()

    assert asyncio.run(main()) == (b"value", b"PONG")


@needs_redis
def test_every_argument_type_round_trips_and_a_wrong_one_is_refused_before_sending(key: str) -> None:
    async def main() -> list[object]:
        client = PipelinedRedis(settings.REDIS_URL)
        try:
            await client.execute("RPUSH", key, b"raw\x00bytes", "é", 42, -7, 2.5, 2**70)
            for wrong in (True, None, object()):
                with pytest.raises(rexc.DataError):
                    await client.execute("RPUSH", key, wrong)  # type: ignore[arg-type]
            result: list[object] = await client.execute("LRANGE", key, 0, -1)
            return result
        finally:
            await client.aclose()

    assert asyncio.run(main()) == [b"raw\x00bytes", "é".encode(), b"42", b"-7", b"2.5", str(2**70).encode()]
