"""How the portal is served: gunicorn with `-k portal.serving.PortalUvicornWorker` (deploy/run-multi, the systemd unit,
scripts/run). The worker is uvicorn's, with what uvicorn does not do on its own:

- A deadline for the request head (SERVER_HEADER_TIMEOUT_SECONDS, from the connection's opening or, on a kept-alive
  connection, from the next request's first byte) and for the body (SERVER_BODY_TIMEOUT_SECONDS, from the end of
  the head). uvicorn bounds only the idle time between requests: a client sending a byte every few seconds held
  its connection, its buffers and a place in the worker for as long as it liked (slowloris). Past the deadline the
  connection is closed, with a 408 when no answer is under way. The ASGI application cannot do this itself: it is
  called only once the head is complete, so the bound has to be in the server's protocol.
- A request head of at most MAX_HEAD_BYTES (431 beyond): httptools, unlike h11, sets no limit of its own.
- The connection's peer as the client's address in the ASGI scope: uvicorn's own X-Forwarded-For handling (which
  believed any loopback peer) is off; portal/client_address.py reads the header from TRUSTED_PROXIES only.
- At most SERVER_MAX_CONNECTIONS connections per worker (uvicorn's limit_concurrency): past it a request is
  answered 503 at once instead of being queued behind the others.

The deadlines are checked by one sweep per worker twice a second rather than by a timer per request: two timers per
request would cost more on the gateway's path than the sweep costs in all (docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn_worker import UvicornWorker

from portal.settings_cache import SettingsCache

log = logging.getLogger(__name__)

SWEEP_SECONDS = 0.5
# A request head (request line and headers) larger than this is refused with 431; h11 allows 16 KiB, nginx 32 KiB.
MAX_HEAD_BYTES = 64 * 1024
HEAD_TOO_LARGE = f"The request head is larger than {MAX_HEAD_BYTES // 1024} KiB."
LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ServerLimits:
    header_timeout: float
    body_timeout: float


def _limits() -> ServerLimits:
    from django.conf import settings

    return ServerLimits(
        header_timeout=settings.SERVER_HEADER_TIMEOUT_SECONDS, body_timeout=settings.SERVER_BODY_TIMEOUT_SECONDS
    )


LIMITS = SettingsCache(_limits)


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for the part of the request being read, and a size limit for its
    head (httptools has none: a client could send megabytes of headers within the deadline)."""

    def __init__(self, config: Any, server_state: ServerState, app_state: dict[str, Any], _loop: Any = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = LIMITS.get()
        self.header_timeout = limits.header_timeout
        self.body_timeout = limits.body_timeout
        self.deadline: float | None = None  # loop time by which the head or body being read must be complete
        self.reading_head = False
        self.read_bytes = 0  # the size of the read being parsed
        self.head_seen = 0  # bytes read since the head being read began, before this read
        self.began_in = 0  # the size of the read in which it began
        self.refused = False
        _Sweeper.start(self.loop, server_state)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.header_timeout
        self.reading_head = True

    def data_received(self, data: bytes) -> None:
        if self.refused:  # answered and closing: nothing more is parsed, no application is started
            return
        self.read_bytes = len(data)
        super().data_received(data)
        if self.reading_head:
            self.head_seen += len(data)
            # httptools keeps a header's partial value in a buffer of its own, so only the bytes read tell how big
            # an unfinished head is; the read in which it began may also hold the end of the previous request.
            if self.head_seen - self.began_in > MAX_HEAD_BYTES:
                self.refuse(431, HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_head = True
        self.head_seen = 0
        self.began_in = self.read_bytes
        if self.deadline is None:  # the next request on a kept-alive connection: its head starts now
            self.deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        if self.refused:
            return
        # The bytes read since the head began bound its size; only a head that may be too large is measured.
        if self.head_seen + self.read_bytes > MAX_HEAD_BYTES and self.head_size() > MAX_HEAD_BYTES:
            self.refuse(431, HEAD_TOO_LARGE)
            return
        self.deadline = self.loop.time() + self.body_timeout
        self.reading_head = False
        super().on_headers_complete()

    def head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.deadline = None  # the whole request is in; the answer may take as long as it takes (streams)
        super().on_message_complete()

    def expire(self) -> None:
        """The head or body did not arrive in time: close, saying why when no answer has begun."""
        self.deadline = None
        if self.reading_head:
            self.refuse(408, f"The request head did not arrive within {self.header_timeout:g} seconds.")
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.close()  # a body that stalls: the application's receive() then reports the disconnect

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` (unless an answer is under way on this connection) and close."""
        self.refused = True
        self.deadline = None
        self.reading_head = False
        if self.transport is None or self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:
            body = message.encode()
            content = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                content.extend([name, b": ", value, b"\r\n"])
            content.extend(
                [
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n",
                    body,
                ]
            )
            self.transport.write(b"".join(content))
        self.transport.close()


class _Sweeper:
    """Closes, twice a second, the connections of one server whose deadline has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server_state: ServerState) -> None:
        self.loop = loop
        self.connections = server_state.connections
        self.expired = 0
        self.logged_at = float("-inf")
        loop.call_later(SWEEP_SECONDS, self.sweep)

    @classmethod
    def start(cls, loop: asyncio.AbstractEventLoop, server_state: ServerState) -> None:
        if getattr(server_state, "portal_sweeper", None) is None:
            server_state.portal_sweeper = cls(loop, server_state)  # type: ignore[attr-defined]

    def sweep(self) -> None:
        try:
            now = self.loop.time()
            for protocol in list(self.connections):  # a copy: closing one changes the set
                if not isinstance(protocol, DeadlineProtocol):
                    continue
                if protocol.deadline is not None and protocol.deadline <= now:
                    protocol.expire()
                    self.expired += 1
            if self.expired and now - self.logged_at >= LOG_EVERY_SECONDS:
                # One line a minute at most: under a slowloris attack a line per connection would flood the logs.
                log.warning("closed %d connections whose request head or body did not arrive in time", self.expired)
                self.expired = 0
                self.logged_at = now
        finally:  # the next sweep is armed whatever happened in this one
            self.loop.call_later(SWEEP_SECONDS, self.sweep)


class PortalUvicornWorker(UvicornWorker):
    """gunicorn's worker class for the portal: uvicorn with the deadlines above and the connection cap."""

    CONFIG_KWARGS = {"loop": "auto", "http": "portal.serving:DeadlineProtocol"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
        from django.conf import settings

        self.config.limit_concurrency = settings.SERVER_MAX_CONNECTIONS
        # uvicorn would otherwise replace the peer's address with X-Forwarded-For from any loopback peer
        # (FORWARDED_ALLOW_IPS); whose header counts is TRUSTED_PROXIES' decision (portal/client_address.py).
        self.config.proxy_headers = False
