"""A lean, pipelined Redis client for the gateway's hot path: one connection per event loop, many requests on it.

Why not redis.asyncio for this: it takes a pooled connection per concurrent command and writes each command with
its own system call, so 32 concurrent requests mean 32 connections and dozens of writes per loop turn. Profiles of
the gateway put about a third of a request's time there. Here every command issued in the same loop turn goes out
in one write on one connection, and replies are matched to callers in order (Redis answers a connection's commands
in the order it received them), parsed by hiredis.

It speaks only what the hot path needs (any command as a list of arguments, plus the few helpers below). Errors are
redis-py's exception classes, so callers catch them exactly as they would from redis.asyncio:
`ConnectionError` for a refused, lost or unreachable server, `TimeoutError` when no reply came within the timeout
(the connection is then dropped, failing every command waiting on it), `NoScriptError` and friends for error replies.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis import exceptions as rexc

Arg = bytes | str | int | float

# Error reply prefixes mapped the way redis-py maps them; anything else is a plain ResponseError.
_ERRORS: dict[str, type[rexc.RedisError]] = {
    "NOSCRIPT": rexc.NoScriptError,
    "READONLY": rexc.ReadOnlyError,
    "LOADING": rexc.BusyLoadingError,
    "NOAUTH": rexc.AuthenticationError,
    "WRONGPASS": rexc.AuthenticationError,
    "TRYAGAIN": rexc.TryAgainError,
    "CLUSTERDOWN": rexc.ClusterDownError,
}


# The TLS options a rediss:// URL may carry, read as redis-py reads them (`?ssl_ca_certs=/path/ca.pem`), so both
# clients built from one REDIS_URL trust the same certificates.
_SSL_OPTIONS = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
_FALSE = ("0", "F", "FALSE", "N", "NO")  # redis-py's to_bool


def ssl_context(options: dict[str, str]) -> ssl.SSLContext:
    """The context for a rediss:// URL's query options: the certificate verified against the system's CAs (or
    `ssl_ca_certs` / `ssl_ca_path`) and its name against the host, unless the URL says otherwise."""
    unknown = sorted(name for name in options if name.startswith("ssl_") and name not in _SSL_OPTIONS)
    if unknown:
        supported = ", ".join(_SSL_OPTIONS)
        raise ValueError(f"unsupported TLS option {unknown[0]!r} in the Redis URL (supported: {supported})")
    cert_reqs = options.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in _CERT_REQS:
        raise ValueError(f"ssl_cert_reqs in the Redis URL must be none, optional or required; got {cert_reqs!r}")
    context = ssl.create_default_context()
    context.check_hostname = cert_reqs != "none" and options.get("ssl_check_hostname", "true").upper() not in _FALSE
    context.verify_mode = _CERT_REQS[cert_reqs]
    if options.get("ssl_certfile") or options.get("ssl_keyfile"):
        context.load_cert_chain(certfile=options.get("ssl_certfile", ""), keyfile=options.get("ssl_keyfile"))
    if options.get("ssl_ca_certs") or options.get("ssl_ca_path"):
        context.load_verify_locations(cafile=options.get("ssl_ca_certs"), capath=options.get("ssl_ca_path"))
    return context


def pack(args: Sequence[Arg]) -> bytes:
    """One command in RESP, encoded by hiredis in C: a third of the time the same loop takes in Python, and this runs
    for every argument of every hot-path command."""
    try:
        # hiredis's stub types the argument as a 1-tuple; any length is accepted.
        return hiredis.pack_command(args if type(args) is tuple else tuple(args))  # type: ignore[arg-type]
    except TypeError:  # hiredis refuses bools too: sending True where 1 was meant is surely a mistake
        if any(arg is True or arg is False for arg in args):
            raise rexc.DataError("a bool is not a Redis argument; send 0 or 1") from None
        kinds = ", ".join(sorted({type(arg).__name__ for arg in args if not isinstance(arg, (bytes, str, int, float))}))
        raise rexc.DataError(f"cannot send a {kinds} to Redis") from None


def _error(reply: hiredis.ReplyError) -> rexc.RedisError:
    message = str(reply)
    return _ERRORS.get(message.split(" ", 1)[0], rexc.ResponseError)(message)


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reader = hiredis.Reader()
        self._pending: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._out: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as error:
                self._fail(rexc.ConnectionError(f"Redis sent a reply that cannot be parsed: {error}"))
                return
            if reply is False:
                return
            if not pending:  # a reply nobody asked for: the stream is out of step, start again
                self._fail(rexc.ConnectionError("Redis sent an unexpected reply"))
                return
            future, _ = pending.popleft()
            if future.done():  # its caller gave up (cancelled); the reply is dropped, the order still holds
                continue
            if isinstance(reply, hiredis.ReplyError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(rexc.ConnectionError("Connection to Redis was lost"))

    # commands
    def call(self, args: Sequence[Arg]) -> asyncio.Future[Any]:
        if self.closed:
            raise rexc.ConnectionError("Connection to Redis is closed")
        future = self.loop.create_future()
        if not self._pending and self.transport is not None:
            # Nothing in flight, so nothing is likely to join this command in this loop turn: it goes out now, and
            # the caller's work until its next await overlaps the round trip. Under load commands are in flight and
            # those of one turn share a write at its end.
            self.transport.write(pack(args))
        else:
            if not self._out:
                self.loop.call_soon(self._flush)
            self._out.append(pack(args))
        self._pending.append((future, time.monotonic()))
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self.timeout, self._check_deadline)
        return future

    def _flush(self) -> None:
        if self._out and self.transport is not None and not self.closed:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out = []
            self.transport.write(data)

    def _check_deadline(self) -> None:
        """One timer per connection, not one per command: the oldest unanswered command decides. A reply that is
        late past the timeout means the connection is stuck, so everything on it fails and a new one is made."""
        self._watchdog = None
        if not self._pending:
            return
        waited = time.monotonic() - self._pending[0][1]
        if waited >= self.timeout:
            self._fail(rexc.TimeoutError(f"Redis did not answer within {self.timeout:g} s"))
            return
        self._watchdog = self.loop.call_later(self.timeout - waited, self._check_deadline)

    def _fail(self, error: rexc.RedisError) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._pending:
            future, _ = self._pending.popleft()
            if not future.done():
                future.set_exception(error)
        self._out = []
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        self._fail(rexc.ConnectionError("Connection to Redis was closed by this process"))


class PipelinedRedis:
    """One event loop's client. Made by `portal.redis.hot_redis()`; do not share it across loops."""

    def __init__(self, url: str, *, connect_timeout: float = 1.0, timeout: float = 1.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r}")
        self._scheme = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 6379
        self._path = parts.path if parts.scheme == "unix" else ""
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        options = {name: values[0] for name, values in parse_qs(parts.query).items() if values}
        db = options.get("db") or (parts.path.lstrip("/") if parts.scheme != "unix" else "")
        self._db = int(db) if db.isdigit() else 0
        # Made now, so a CA file that cannot be read or an unknown option fails when the client is built.
        self._ssl = ssl_context(options) if parts.scheme == "rediss" else None
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def execute(self, *args: Arg) -> Any:
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        return await connection.call(args)

    async def execute_many(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Several commands in one write; every reply is waited for, then the first error reply (if any) raises."""
        connection = self._connection
        if connection is None or connection.closed:
            connection = await self._connect()
        futures = [connection.call(command) for command in commands]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Arg) -> Any:
        return await self.execute("EVALSHA", sha, numkeys, *keys_and_args)

    async def eval(self, script: str, numkeys: int, *keys_and_args: Arg) -> Any:
        return await self.execute("EVAL", script, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> Any:
        return await self.execute("SCRIPT", "LOAD", script)

    async def get(self, key: str) -> bytes | None:
        result: bytes | None = await self.execute("GET", key)
        return result

    async def set(self, key: str, value: Arg, *, ex: int | None = None) -> Any:
        if ex is None:
            return await self.execute("SET", key, value)
        return await self.execute("SET", key, value, "EX", ex)

    async def aclose(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _connect(self) -> _Connection:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            connection = await self._open(loop)
        except BaseException as error:
            self._connecting.set_exception(error)
            self._connecting.exception()  # retrieved here; waiters get it through shield
            raise
        else:
            self._connection = connection
            self._connecting.set_result(connection)
            return connection
        finally:
            self._connecting = None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        def factory() -> _Connection:
            return _Connection(loop, self.timeout)

        try:
            async with asyncio.timeout(self.connect_timeout):
                if self._scheme == "unix":
                    _, connection = await loop.create_unix_connection(factory, self._path)
                else:
                    _, connection = await loop.create_connection(factory, self._host, self._port, ssl=self._ssl)
        except TimeoutError:
            raise rexc.TimeoutError(f"Redis at {self._host}:{self._port} did not accept a connection in time") from None
        except OSError as error:
            raise rexc.ConnectionError(f"Cannot connect to Redis: {error.strerror or error}") from None
        setup: list[list[Arg]] = []
        if self._password is not None:
            setup.append(
                ["AUTH", self._password] if self._username is None else ["AUTH", self._username, self._password]
            )
        if self._db:
            setup.append(["SELECT", self._db])
        try:
            for command in setup:
                await connection.call(command)
        except rexc.RedisError:
            connection.close()
            raise
        return connection
