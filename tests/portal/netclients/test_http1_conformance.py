"""The HTTP/1.1 client (portal/netclients/http1.py) against loopback servers, on asyncio's loop and on uvloop (the
gateway's): an https target whose certificate a private CA signed, trusted through `ca_file` and refused without
it; and a keep-alive connection the target closed while it sat idle in the pool, which must never fail a request."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

from portal.netclients.http1 import HTTP1Client, Timeouts, UpstreamConnectError
from tests.portal.netclients.servers import Certificates

pytestmark = pytest.mark.slow

FAST = Timeouts(connect=2.0, read=2.0, total=5.0)
HEADERS = {"Content-Type": "application/json"}
ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def run(loop: str, main: Callable[[], Awaitable[Any]]) -> Any:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(main())


async def fetch(client: HTTP1Client, url: str) -> tuple[int, bytes]:
    response = await client.send("POST", url, HEADERS, b"{}", FAST)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-"
                  b"length:"))  # fmt: skip
    await reader.readexactly(length)


class TLSServer:
    """An https target on loopback with the private CA's certificate; keeps connections alive and counts them."""

    def __init__(self, certificates: Certificates) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(certificates.cert, certificates.key)
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                await read_request(reader)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.context)
        return f"https://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_an_https_target_behind_a_private_ca_is_reached_through_ca_file(loop: str, certificates: Certificates) -> None:
    async def main() -> tuple[list[tuple[int, bytes]], int]:
        server = TLSServer(certificates)
        url = await server.start()
        client = HTTP1Client(ca_file=str(certificates.ca))
        try:
            results = [await fetch(client, url) for _ in range(3)]
            return results, server.connections
        finally:
            await client.close()
            server.server.close()

    results, connections = run(loop, main)
    assert results == [(200, b'{"ok":true}')] * 3
    assert connections == 1  # kept alive over TLS too


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("trusted", ["system only", "another CA"])
def test_an_https_target_whose_ca_is_not_trusted_is_a_connect_error(
    loop: str, trusted: str, certificates: Certificates
) -> None:
    async def main() -> str:
        server = TLSServer(certificates)
        url = await server.start()
        client = HTTP1Client(ca_file=None if trusted == "system only" else str(certificates.other_ca))
        try:
            with pytest.raises(UpstreamConnectError) as refused:
                await fetch(client, url)
            return str(refused.value)
        finally:
            await client.close()
            server.server.close()

    assert run(loop, main) == "SSLCertVerificationError"  # nothing was sent: safe to try another target


def test_a_ca_file_that_cannot_be_read_fails_when_the_client_is_made(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        HTTP1Client(ca_file=str(tmp_path / "missing.pem"))


class ClosingServer:
    """A blocking loopback server in its own thread: it answers each connection's first request with a keep-alive
    answer, then closes that connection (as a target does when its idle timeout strikes)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while not data.endswith(b"{}"):  # the whole request: head and its two-byte body
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    self.requests += 1
                    conn.sendall(ANSWER)

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux), which then returns
        self.listener.close()
        self.thread.join(timeout=5)


@pytest.fixture
def closing_server() -> Iterator[ClosingServer]:
    server = ClosingServer()
    yield server
    server.close()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_pooled_connection_the_target_closed_is_replaced_not_written_to(
    loop: str, closing_server: ClosingServer
) -> None:
    """The target closes right after its answer. The second request is made while the close has reached this host
    but not yet the event loop (the loop is held up, as a busy worker's is): it must go out on a fresh connection and
    succeed, not fail as a broken exchange (which the gateway answers 502)."""
    url = f"http://127.0.0.1:{closing_server.port}/v1/chat/completions"

    async def main() -> list[tuple[int, bytes]]:
        client = HTTP1Client(keepalive_seconds=30)
        try:
            first = await fetch(client, url)
            time.sleep(0.2)  # blocks the loop: the target's close arrives and waits, unseen, in the socket
            second = await fetch(client, url)
            return [first, second]
        finally:
            await client.close()

    assert run(loop, main) == [(200, b'{"ok":true}')] * 2
    assert (closing_server.connections, closing_server.requests) == (2, 2)
