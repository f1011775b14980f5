"""The gateway's upstream HTTP/1.1 client (portal/netclients/http1.py, built from settings by gateway/upstream.py)
against real loopback servers that answer in the ways targets do: framed and close-delimited bodies, chunked
streams, large answers, broken and silent connections. TLS targets and connections closed by the target while idle:
tests/portal/netclients/test_http1_conformance.py."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from gateway.upstream import upstream_client
from portal.netclients.http1 import HTTP1Client, Timeouts, UpstreamBroken, UpstreamConnectError
from tests.portal.netclients.servers import make_certificates

Answer = Callable[[asyncio.StreamWriter, bytes], Awaitable[bool]]  # writes a response; True keeps the connection
FAST = Timeouts(connect=1.0, read=1.0, total=5.0)
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer router-key"}


class Server:
    """A loopback HTTP server whose answer is scripted per test; it counts connections and keeps the requests."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.answer(writer, request):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/v1/completions/7"

    async def stop(self) -> None:
        self.server.close()


def run(answer: Answer, scenario: Callable[..., Awaitable[Any]]) -> Any:
    async def main() -> Any:
        server = Server(answer)
        url = await server.start()
        client = upstream_client()  # after the test's settings: pool size and keep-alive are read here
        try:
            return await scenario(client, url, server)
        finally:
            await client.close()
            await server.stop()

    return asyncio.run(main())


def json_answer(body: bytes = b'{"ok":true}', delay: float = 0.0) -> Answer:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        if delay:
            await asyncio.sleep(delay)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        writer.write(body)
        await writer.drain()
        return True

    return answer


async def fetch(client: HTTP1Client, url: str, timeouts: Timeouts = FAST, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await client.send("POST", url, HEADERS, body, timeouts)
    try:
        return response.status, await response.read()
    finally:
        response.release()


def test_sequential_requests_reuse_one_connection_and_send_the_headers_given(settings: Any) -> None:
    settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = 4

    async def scenario(client: HTTP1Client, url: str, server: Server) -> tuple[list[tuple[int, bytes]], int, bytes]:
        results = [await fetch(client, url, body=b'{"n":%d}' % n) for n in range(5)]
        return results, server.connections, server.requests[0]

    results, connections, first = run(json_answer(), scenario)
    assert results == [(200, b'{"ok":true}')] * 5
    assert connections == 1
    assert first.startswith(b"POST /api/v1/completions/7 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer router-key\r\n" in first
    assert b"\r\nHost: 127.0.0.1:" in first
    assert first.endswith(b'\r\n\r\n{"n":0}')


def test_concurrent_requests_never_open_more_connections_than_the_pool_allows(settings: Any) -> None:
    settings.GATEWAY_UPSTREAM_POOL_SIZE = 3

    async def scenario(client: HTTP1Client, url: str, server: Server) -> tuple[list[int], int, int]:
        results = await asyncio.gather(*(fetch(client, url) for _ in range(12)))
        return [status for status, _ in results], server.max_open, server.connections

    statuses, max_open, connections = run(json_answer(delay=0.05), scenario)
    assert statuses == [200] * 12
    assert max_open == 3
    assert connections == 3


def test_a_chunked_stream_arrives_piece_by_piece_as_the_target_sends_it() -> None:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.2)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario(client: HTTP1Client, url: str, server: Server) -> list[tuple[bytes, float]]:
        started = time.monotonic()
        response = await client.send("POST", url, HEADERS, b"{}", FAST)
        pieces = []
        try:
            while chunk := await response.read_chunk():
                pieces.append((chunk, time.monotonic() - started))
        finally:
            response.release()
        return pieces

    pieces = run(answer, scenario)
    assert [chunk for chunk, _ in pieces] == [b"data: one\n\n", b"data: two\n\n"]
    assert pieces[0][1] < 0.15  # the first piece was not held back until the end
    assert pieces[1][1] >= 0.2


def test_a_body_without_length_ends_when_the_target_closes() -> None:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{"whole":')
        await writer.drain()
        writer.write(b"true}")
        return False

    async def scenario(client: HTTP1Client, url: str, server: Server) -> list[tuple[int, bytes]]:
        return [await fetch(client, url), await fetch(client, url)]

    assert run(answer, scenario) == [(200, b'{"whole":true}')] * 2


def test_a_large_answer_is_read_whole_although_reading_pauses_for_it() -> None:
    big = b"x" * (3 * 1024 * 1024)

    async def scenario(client: HTTP1Client, url: str, server: Server) -> tuple[int, int]:
        status, body = await fetch(client, url)
        return status, len(body)

    assert run(json_answer(big), scenario) == (200, len(big))


def test_an_unreachable_target_is_a_connect_error_and_nothing_was_sent() -> None:
    async def scenario(client: HTTP1Client, url: str, server: Server) -> None:
        await server.stop()
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamConnectError):
            await fetch(client, url)

    run(json_answer(), scenario)


def test_a_silent_target_times_out_after_the_read_timeout() -> None:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        await asyncio.sleep(10)
        return False

    async def scenario(client: HTTP1Client, url: str, server: Server) -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await fetch(client, url, Timeouts(connect=1.0, read=0.3, total=5.0))
        return time.monotonic() - started

    took = run(answer, scenario)
    assert 0.3 <= took < 1.0


def test_a_reused_connection_still_times_out_at_its_wait_deadline(settings: Any) -> None:
    """One timer per connection serves the keep-alive limit and every wait on it: a deadline shorter than the one
    armed (here 0.3 s against the 30 s idle limit) still fires on time, on the first request and on a later one."""
    settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = 30
    answers = 0

    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        nonlocal answers
        answers += 1
        if answers == 2:
            await asyncio.sleep(10)  # the second request on this connection: silent
        return await json_answer()(writer, request)

    async def scenario(client: HTTP1Client, url: str, server: Server) -> tuple[int, float, int]:
        status, _ = await fetch(client, url, Timeouts(connect=1.0, read=0.3, total=5.0))
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await fetch(client, url, Timeouts(connect=1.0, read=0.3, total=5.0))
        return status, time.monotonic() - started, server.connections

    status, took, connections = run(answer, scenario)
    assert (status, connections) == (200, 1)
    assert 0.3 <= took < 1.0


def test_the_total_budget_bounds_a_stream_that_keeps_trickling() -> None:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(50):
            writer.write(b"2\r\nok\r\n")
            await writer.drain()
            await asyncio.sleep(0.1)
        return False

    async def scenario(client: HTTP1Client, url: str, server: Server) -> float:
        started = time.monotonic()
        response = await client.send("POST", url, HEADERS, b"{}", Timeouts(connect=1.0, read=0.5, total=0.6))
        try:
            with pytest.raises(TimeoutError):
                while await response.read_chunk():
                    pass
        finally:
            response.release()
        return time.monotonic() - started

    took = run(answer, scenario)
    assert 0.6 <= took < 1.2


@pytest.mark.parametrize(
    "reply",
    [
        b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"cut":',  # closed mid-body
        b"NOT HTTP AT ALL\r\n\r\n",  # not an HTTP answer
        b"",  # closed before answering
    ],
)
def test_a_broken_answer_is_reported_as_broken_not_as_a_response(reply: bytes) -> None:
    async def answer(writer: asyncio.StreamWriter, request: bytes) -> bool:
        writer.write(reply)
        await writer.drain()
        return False

    async def scenario(client: HTTP1Client, url: str, server: Server) -> None:
        with pytest.raises(UpstreamBroken):
            await fetch(client, url)

    run(answer, scenario)


def test_idle_connections_are_closed_after_the_keepalive_setting(settings: Any) -> None:
    settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS = 0.2

    async def scenario(client: HTTP1Client, url: str, server: Server) -> tuple[int, int]:
        await fetch(client, url)
        await asyncio.sleep(0.1)
        still_open = server.open
        await asyncio.sleep(0.3)
        return still_open, server.open

    assert run(json_answer(), scenario) == (1, 0)


def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    async def scenario(client: HTTP1Client, url: str, server: Server) -> int:
        with pytest.raises(ValueError, match="line break"):
            await client.send("POST", url, {"Authorization": "Bearer x\r\nX-Injected: 1"}, b"{}", FAST)
        return server.connections

    assert run(json_answer(), scenario) == 0


def test_the_gateway_trusts_the_private_ca_named_by_its_setting(settings: Any, tmp_path: Any) -> None:
    """GATEWAY_UPSTREAM_CA_FILE: an https target whose certificate a private CA signed is reached; without the
    setting the same target is refused as unreachable (nothing was sent)."""
    certificates = make_certificates(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(certificates.cert, certificates.key)

    async def main() -> tuple[int, bytes]:
        server = Server(json_answer())
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=server_tls)
        url = f"https://127.0.0.1:{server.server.sockets[0].getsockname()[1]}/v1/chat/completions"
        settings.GATEWAY_UPSTREAM_CA_FILE = None
        untrusting = upstream_client()
        settings.GATEWAY_UPSTREAM_CA_FILE = str(certificates.ca)
        trusting = upstream_client()
        try:
            with pytest.raises(UpstreamConnectError):
                await fetch(untrusting, url)
            return await fetch(trusting, url)
        finally:
            await untrusting.close()
            await trusting.close()
            await server.stop()

    assert asyncio.run(main()) == (200, b'{"ok":true}')
