"""A lean HTTP/1.1 client with keep-alive pools: one per gateway worker for its upstream hop (`gateway/upstream.py`
builds it from settings). Connections per target origin, each request written in one `write`, answers parsed by
httptools (the parser uvicorn uses for the client side).

Why not aiohttp (docs/performance.md: the client is picked by measurement): profiles of the gateway under load
put a third of its CPU per request in aiohttp's client, for features this hop never uses (cookies, redirects,
proxies, multipart, tracing). This client does what the hop needs and nothing else.

Plain parameters, no settings: the pool size, how long an idle connection is kept, and the CA file trusted for
https targets besides the system's are given to the constructor; timeouts with each request. A connect failure
(nothing was sent yet: safe to retry elsewhere) raises `UpstreamConnectError`; no byte within the read timeout, or
the total budget spent, raises `TimeoutError`. A connection that breaks after the request was written raises
`UpstreamBroken`: the target may have acted on it, so it is never resent. An idle connection the target has closed
meanwhile is never written to: it is checked before reuse (one `poll` on its socket, ~0.6 µs) and replaced by a
fresh one. A close that crosses the request on the wire is still `UpstreamBroken` (the target may have read it);
keeping idle connections for less than the targets' own idle timeout makes that rare.
"""

from __future__ import annotations

import asyncio
import collections
import select
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 256 * 1024  # buffered answer bytes at which reading from the target pauses until the relay catches up
_READABLE = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)  # RDHUP: Linux's "the peer closed"


class UpstreamClientError(Exception):
    """Base of the client's own failures."""


class UpstreamConnectError(UpstreamClientError):
    """The target could not be reached; nothing was sent."""


class UpstreamBroken(UpstreamClientError):
    """The connection failed or the answer was malformed after the request was sent."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float  # the first byte, and each later read
    total: float


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL split once: a target's URL does not change per request."""

    origin: tuple[str, str, int]
    host_header: str
    path: str


class _Origin:
    """The connections to one scheme/host/port: idle ones (most recently used last) and a count of all open."""

    __slots__ = ("idle", "open", "waiters")

    def __init__(self) -> None:
        self.idle: collections.deque[_Connection] = collections.deque()
        self.open = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Connection(asyncio.Protocol):
    """One keep-alive connection and the state of the exchange on it (one at a time: no pipelining)."""

    def __init__(self, client: HTTP1Client, origin: _Origin) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.busy = False
        # One timer per connection, not one per wait (a timer costs about as much as the rest of a wait): it fires
        # at `deadline` or earlier and re-arms itself while the deadline has moved on. `deadline` is the pending
        # wait's, while one is pending; the keep-alive limit, while the connection is idle.
        self.deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._armed_for = 0.0
        self._poll: select.poll | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.until_close = False  # no length and not chunked: the body ends when the target closes
        self.framed = False
        self.keep_alive = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's
        self.origin.open += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()
            self._poll.register(sock.fileno(), _READABLE)

    def closed_by_target(self) -> bool:
        """Whether an idle connection has something to read: the target's close (or bytes nobody asked for) that
        reached this host but not yet the event loop, as when the loop was busy when the target's idle timeout
        struck. Such a connection is never written to: the request would be lost with it. One `poll`, no wait."""
        return self._poll is not None and bool(self._poll.poll(0))

    def data_received(self, data: bytes) -> None:
        if not self.busy:  # bytes nobody asked for: the connection cannot be trusted with another request
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(UpstreamBroken("malformed answer from the target"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.origin.open -= 1
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.origin.wake_one()
        if not self.busy or self.complete:
            return
        if self.headers_done and self.until_close:
            self.complete = True
            self._wake()
        else:
            self._fail(UpstreamBroken("the target closed the connection mid-answer"))

    # -- httptools callbacks ------------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self.until_close = not self.framed and self.status >= 200 and self.status not in (204, 304)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered >= _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # read now: the parser resets once this returns
        self._wake()

    # -- the exchange -------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        self.error = error
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def arm(self, deadline: float) -> None:
        """Set the deadline (loop time) the watchdog enforces."""
        self.deadline = deadline
        if self._watchdog is None or deadline < self._armed_for:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = self.client.loop.call_at(deadline, self._check)
            self._armed_for = deadline

    def _check(self) -> None:
        self._watchdog = None
        if self.lost or (self.busy and self.waiter is None):
            return  # gone, or between two waits: the next wait arms it again
        loop = self.client.loop
        if loop.time() < self.deadline:
            self._watchdog = loop.call_at(self.deadline, self._check)
            self._armed_for = self.deadline
        elif self.busy:
            self._fail(TimeoutError("the target did not answer in time"))
            self.close()
        else:
            self.close()  # unused for the keep-alive limit: closed before the target closes it

    async def wait(self, deadline: float) -> None:
        """Until the parser reports progress, the connection breaks, or `deadline` (loop time) passes."""
        if self.error is not None:
            raise self.error
        self.waiter = waiter = self.client.loop.create_future()
        self.arm(deadline)
        try:
            await waiter
        finally:
            self.waiter = None

    def take(self) -> bytes:
        data = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.close()


class Response:
    """An answer whose status line and headers have arrived; the body is read with `read()` or, streamed,
    `read_chunk()`. `release()` must follow, always: it returns the connection to the pool or closes it."""

    __slots__ = ("_conn", "_read_timeout", "_total_deadline", "status")

    def __init__(self, conn: _Connection, read_timeout: float, total_deadline: float) -> None:
        self._conn = conn
        self._read_timeout = read_timeout
        self._total_deadline = total_deadline
        self.status = conn.status

    def _deadline(self) -> float:
        return min(self._conn.client.loop.time() + self._read_timeout, self._total_deadline)

    async def read(self) -> bytes:
        """The whole body (taken as it arrives, so reading never pauses for a large one)."""
        conn = self._conn
        parts: list[bytes] = []
        while True:
            if conn.chunks:
                parts.append(conn.take())
            if conn.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            await conn.wait(self._deadline())

    async def read_chunk(self) -> bytes:
        """The bytes that have arrived since the last call, waiting for some if none have; b"" at the end."""
        conn = self._conn
        while not conn.chunks and not conn.complete:
            await conn.wait(self._deadline())
        return conn.take() if conn.chunks else b""

    def release(self) -> None:
        conn = self._conn
        conn.client._release(conn)

    def cancel(self, error: BaseException) -> None:
        """Fail the pending read (and any later one) with `error`, and drop the connection: the reader learns at once
        that it should stop, and the target that the request is cancelled."""
        conn = self._conn
        conn._fail(error)
        conn.close()

    def close(self) -> None:
        """Drop the connection now (the client left): closing it cancels the request at the target."""
        conn = self._conn
        conn.close()
        conn.client._release(conn)


class HTTP1Client:
    """One event loop's client (the gateway makes one per worker). `pool_size`: open connections per origin (scheme,
    host, port), a request beyond them waits for one within its total budget; `keepalive_seconds`: idle connections
    are closed after this (0: after every answer), keep it below the targets' own idle timeout; `ca_file`: a PEM file
    of certificate authorities trusted for https targets in addition to the system's (a private CA)."""

    def __init__(self, *, pool_size: int = 256, keepalive_seconds: float = 4.0, ca_file: str | None = None) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.pool_size = pool_size
        self.keepalive_seconds = keepalive_seconds
        self.ca_file = ca_file
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[str, _Target] = {}
        self._ssl: ssl.SSLContext | None = None
        if ca_file:
            self._ssl_context()  # a CA file that cannot be read fails here, at start-up, not on the first request

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamConnectError("the target URL is not an http(s) URL")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            if len(self._targets) > 10_000:  # bounded: targets come and go with the catalog
                self._targets.clear()
            target = self._targets[url] = _Target((parts.scheme, parts.hostname, port), parts.netloc, path)
        return target

    async def send(self, method: str, url: str, headers: Any, body: bytes, timeouts: Timeouts) -> Response:
        """Write the request and wait for the answer's status and headers."""
        loop = self.loop
        started = loop.time()
        total_deadline = started + timeouts.total
        target = self._target(url)
        lines = [f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r} holds a line break")  # it would split the request
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\nAccept-Encoding: identity\r\n\r\n")
        request = "".join(lines).encode("latin-1") + body
        conn = await self._acquire(target, timeouts.connect, total_deadline)
        assert conn.transport is not None
        conn.transport.write(request)
        try:
            while not conn.headers_done:
                await conn.wait(min(loop.time() + timeouts.read, total_deadline))
        except BaseException:
            conn.close()
            self._release(conn)
            raise
        return Response(conn, timeouts.read, total_deadline)

    async def _acquire(self, target: _Target, connect_timeout: float, total_deadline: float) -> _Connection:
        origin = self._origins.get(target.origin)
        if origin is None:
            origin = self._origins[target.origin] = _Origin()
        loop = self.loop
        while True:
            while origin.idle:
                conn = origin.idle.pop()
                if not conn.lost and conn.transport is not None and not conn.transport.is_closing():
                    if conn.closed_by_target():
                        conn.close()  # its connection_lost frees the slot and wakes a waiter
                        continue
                    conn._reset()
                    conn.busy = True
                    return conn
            if origin.open < self.pool_size:
                return await self._connect(target, origin, connect_timeout)
            # Every connection is busy: wait for one to come back, within the exchange's whole budget.
            waiter = loop.create_future()
            origin.waiters.append(waiter)
            timer = loop.call_at(total_deadline, _expire_waiter, waiter)
            try:
                await waiter
            finally:
                timer.cancel()

    async def _connect(self, target: _Target, origin: _Origin, connect_timeout: float) -> _Connection:
        scheme, host, port = target.origin
        conn = _Connection(self, origin)
        conn.busy = True
        origin.open += 1  # counted while connecting, so a burst cannot open more than the pool allows
        try:
            async with asyncio.timeout(connect_timeout):
                await self.loop.create_connection(
                    lambda: conn,
                    host,
                    port,
                    ssl=self._ssl_context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except (OSError, TimeoutError, ssl.SSLError) as error:
            raise UpstreamConnectError(type(error).__name__) from None
        finally:
            origin.open -= 1  # connection_made counted the connection itself, if it was made
            if conn.transport is None:
                origin.wake_one()
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            if self.ca_file:
                context.load_verify_locations(cafile=self.ca_file)
            self._ssl = context
        return self._ssl

    def _release(self, conn: _Connection) -> None:
        if not conn.busy:
            return
        conn.busy = False
        keep = (
            not conn.lost
            and conn.complete
            and conn.error is None
            and not conn.chunks
            and conn.transport is not None
            and not conn.transport.is_closing()
            and conn.keep_alive
        )
        if not keep:
            conn.close()
            return
        keepalive = self.keepalive_seconds
        if keepalive <= 0:
            conn.close()
            return
        conn.arm(self.loop.time() + keepalive)
        conn.origin.idle.append(conn)
        conn.origin.wake_one()

    async def close(self) -> None:
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
        self._origins.clear()


def _expire_waiter(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no upstream connection came free in time"))
