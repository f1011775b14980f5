"""Step 8: send the request to a target and relay the answer, whole or streamed, as it arrives.

A connect failure (nothing was sent) is retried once on another target; once a target has the request, it is never
sent again. A stream's headers go to the client before its first byte; bytes are passed on as soon as they are
translated. A client that leaves mid-stream cancels the upstream request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from billing.admission import Decision, Limit
from gateway.errors import CATALOGUE, error_body
from gateway.refusals import backend_refusal_message
from gateway.upstream import request_timeouts
from metering.events import LifecycleEvent
from portal.netclients.http1 import Response, UpstreamBroken, UpstreamConnectError
from portal.outcomes import Outcome
from routing.adapters import AdapterError, StreamEvent, UpstreamError, UpstreamRequest, build_upstream_request
from routing.adapters.base import Kind
from routing.selection import pick_target
from routing.table import AliasRoute, TargetEntry

if TYPE_CHECKING:
    from gateway.state import Gateway

log = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Header = tuple[bytes, bytes]

# How a forwarding failure ends the request: nothing reached the target (after the one retry), it timed out, or
# anything else.
_FAILED = {"connect": Outcome.ROUTING_ERROR, "timeout": Outcome.BACKEND_TIMEOUT}


@dataclass(slots=True)
class Exchange:
    """What happened upstream, for the usage event and the refund decision."""

    outcome: Outcome = Outcome.UNKNOWN
    status: int = 0
    target_id: int | None = None
    forwarded_at_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_code: str | None = None  # set when the client got (or was sent) a gateway error
    detail: str = ""  # for logs only; never the upstream's own words, which can name hosts or sessions
    headers_sent: bool = False
    chunks: int = 0  # content chunks relayed to the client (streams)
    tried: list[int] = field(default_factory=list)

    backend_message: str = ""  # a backend's refusal of the request, when it is safe to show the client

    @property
    def ledger_error_code(self) -> str:
        """The code the `completed` event records: the error the client was sent, or "" for an answer or a
        client that hung up (nothing was sent to it to name)."""
        if self.outcome is Outcome.OK or self.outcome is Outcome.CLIENT_CANCELLED:
            return ""
        return self.error_code or ""

    @property
    def refundable(self) -> bool:
        """Whether the allowance goes back: the outcome says (portal/outcomes.py). Anything the client received
        counts."""
        return self.outcome.refunded


@dataclass(slots=True)
class Attempt:
    """Where one attempt goes and what it sends; `target` None: no healthy target is left; `upstream` None: the
    body cannot be put in this target's protocol (`problem` says why, for the client)."""

    target: TargetEntry | None
    upstream: UpstreamRequest | None = None
    content: bytes = b""
    problem: str = ""


# Not frozen, as the other per-request dataclasses: a frozen one's __init__ is several times slower.
@dataclass(slots=True)
class Admitted:
    """A request admission let through: what forwarding, the refund and the `completed` event need of it."""

    body: dict[str, Any]
    route: AliasRoute  # the alias it is served by: the one asked for, or the plan's degrade_to alias
    allowance_class: str  # "standard" or "degraded"
    limits: list[Limit]  # what it was booked in, for the refund
    decision: Decision
    accepted: LifecycleEvent
    headers: list[Header]  # rate-limit headers, x-request-id and x-portal-served-model, on every answer
    planned: Attempt | None  # its first attempt, when planned while admission was under way (Forwarder.plan_early)


class Forwarder:
    """Steps 7 and 8 for one request: pick a target, send, relay; records the `forwarded` event."""

    __slots__ = ("gw", "kind", "receive", "request_id", "send")

    def __init__(self, gateway: Gateway, *, kind: Kind, request_id: str, send: Send, receive: Receive) -> None:
        self.gw = gateway
        self.kind = kind
        self.request_id = request_id
        self.send = send
        self.receive = receive

    def plan_early(self, body: dict[str, Any], route: AliasRoute) -> Attempt | None:
        """The first attempt, planned while admission is still being decided (its round trip would otherwise be idle
        time), or None to plan it after: only from the cached all-healthy view of the pool, so a refused request
        never takes a recovering target's one trial. It goes to `run` as `Admitted.planned`."""
        availability = self.gw.availability.fresh(route)
        return None if availability is None else self._plan(body, route, availability, ())

    def _plan(
        self, body: dict[str, Any], route: AliasRoute, availability: Collection[int], exclude: Collection[int]
    ) -> Attempt:
        target = pick_target(route.targets, available=availability, in_flight=self.gw.in_flight, exclude=exclude)
        if target is None:
            return Attempt(None)
        try:
            upstream = build_upstream_request(
                body=body,
                kind=self.kind,
                alias=route,
                target=target,
                request_id=self.request_id,
                timeout_seconds=int(request_timeouts().total),
            )
        except AdapterError as error:
            return Attempt(target, problem=str(error))
        return Attempt(target, upstream, upstream.content())

    async def run(self, admitted: Admitted) -> Exchange:
        exchange = Exchange()
        route, headers, planned = admitted.route, admitted.headers, admitted.planned
        for attempt in range(2):
            if planned is None:
                availability = await self.gw.availability.available(route)
                planned = self._plan(admitted.body, route, availability, exchange.tried)
            plan, planned = planned, None
            target, upstream = plan.target, plan.upstream
            if target is None:
                exchange.outcome = Outcome.ROUTING_ERROR
                exchange.error_code = Outcome.ROUTING_ERROR.error_code
                await self._send_error(exchange, headers)
                return exchange
            exchange.tried.append(target.id)
            exchange.target_id = target.id
            if upstream is None:
                exchange.outcome = Outcome.CLIENT_ERROR
                exchange.error_code = Outcome.CLIENT_ERROR.error_code
                exchange.detail = plan.problem
                await self._send_error(exchange, headers, message=plan.problem)
                return exchange
            try:
                self.gw.in_flight.acquire(target.id)
                try:
                    await self._exchange(upstream, plan.content, target, admitted, exchange)
                finally:
                    self.gw.in_flight.release(target.id)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = _classify(error)
                await self.gw.availability.record(route, target.id, failed=True)
                if failure == "connect" and attempt == 0 and not exchange.headers_sent:
                    continue  # nothing reached the target: the one retry, on another target
                exchange.outcome = _FAILED.get(failure, Outcome.BACKEND_ERROR)
                exchange.detail = type(error).__name__  # its text names the target's host and port
                if failure == "bug":
                    log.exception("request %s: unexpected error while forwarding", self.request_id)
            if exchange.outcome is not Outcome.OK:
                await self._answer_failure(exchange, headers)
            if exchange.detail:
                log.warning("request %s target %s: %s", self.request_id, exchange.target_id, exchange.detail)
            return exchange
        return exchange

    async def _answer_failure(self, exchange: Exchange, headers: list[Header]) -> None:
        """What the client is told of a failed exchange: an error answer if nothing was sent yet, else an error
        event ending the stream (nothing for an answer or a client that left)."""
        outcome = exchange.outcome
        if outcome is Outcome.CLIENT_ERROR and not exchange.headers_sent:
            reason = f": {exchange.backend_message}" if exchange.backend_message else "; check its parameters"
            await self._send_error(exchange, headers, message=f"The backend refused this request as invalid{reason}.")
        elif outcome.upstream_failure and not exchange.headers_sent:
            exchange.error_code = outcome.error_code
            await self._send_error(exchange, headers)
        elif (outcome is Outcome.BACKEND_ERROR or outcome is Outcome.BACKEND_TIMEOUT) and exchange.headers_sent:
            await _send_stream_error(self.send, exchange, self.request_id)

    async def _send_error(self, exchange: Exchange, headers: list[Header], message: str | None = None) -> None:
        code = exchange.error_code or "backend_error"
        body = error_body(code, self.request_id, message=message)
        exchange.status = CATALOGUE[code].status
        await self.send(
            {
                "type": "http.response.start",
                "status": exchange.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        exchange.headers_sent = True
        await self.send({"type": "http.response.body", "body": body})

    async def _exchange(
        self, upstream: UpstreamRequest, content: bytes, target: TargetEntry, admitted: Admitted, exchange: Exchange
    ) -> None:
        route = admitted.route
        response = await self.gw.upstream.send(
            upstream.method, upstream.url, upstream.headers, content, request_timeouts()
        )
        try:
            exchange.forwarded_at_ms = int(time.time() * 1000)
            exchange.status = response.status
            self.gw.usage.record_unless_completed(
                self.request_id, _unmade_forwarded(admitted.accepted, route.alias, target.id, exchange.forwarded_at_ms)
            )
            translator = upstream.translator()
            if response.status >= 400:
                raw = await response.read()
                exchange.detail = f"upstream status {response.status} ({len(raw)} bytes)"
                if response.status in (400, 413, 422):
                    # The backend found the request itself invalid: the client's to fix; it is refunded (nothing
                    # was served), and the backend's reason is passed on when it names no host, session or router.
                    await self.gw.availability.record(route, target.id, failed=False)
                    exchange.outcome = Outcome.CLIENT_ERROR
                    exchange.error_code = Outcome.CLIENT_ERROR.error_code
                    exchange.backend_message = backend_refusal_message(raw)
                    return
                # 5xx, or a 401/403/404/429 that means this target is misconfigured or overloaded.
                await self.gw.availability.record(route, target.id, failed=True)
                exchange.outcome = Outcome.BACKEND_ERROR
                return
            if not upstream.stream:
                raw = await response.read()
                try:
                    mapped = translator.map_body(raw)
                except UpstreamError as error:
                    await self.gw.availability.record(route, target.id, failed=True)
                    exchange.outcome, exchange.detail = Outcome.BACKEND_ERROR, _loggable(str(error))
                    return
                await self.gw.availability.record(route, target.id, failed=False)
                _take_usage(exchange, translator.usage)
                payload = _dumps(mapped)
                await self.send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            *admitted.headers,
                        ],
                    }
                )
                exchange.headers_sent = True
                await self.send({"type": "http.response.body", "body": payload})
                exchange.outcome, exchange.status = Outcome.OK, 200
                return
            await self._relay_stream(response, translator, target, admitted, exchange)
        finally:
            response.release()

    async def _relay_stream(
        self, response: Response, translator: Any, target: TargetEntry, admitted: Admitted, exchange: Exchange
    ) -> None:
        send, route = self.send, admitted.route  # locals: read once per chunk in the loop below
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream"),
                    (b"cache-control", b"no-cache"),
                    (b"x-accel-buffering", b"no"),
                    *admitted.headers,
                ],
            }
        )
        exchange.headers_sent = True
        exchange.status = 200
        # One watcher for the whole stream, not a race per chunk: when the client leaves it fails the pending read.
        disconnect = asyncio.ensure_future(_wait_disconnect(self.receive))
        relaying = True  # read when the watcher's callback runs, which can be a loop turn after it was scheduled

        def client_left(task: asyncio.Future[None]) -> None:
            if relaying and not task.cancelled():
                response.cancel(ClientLeft())

        disconnect.add_done_callback(client_left)
        try:
            while True:
                chunk = await response.read_chunk()
                if disconnect.done():
                    raise ClientLeft
                events = translator.feed(chunk) if chunk else translator.finish()
                # What one read brought goes on in one write: nothing waits for more, and a burst of small events
                # does not cost a system call each.
                out: list[bytes] = []
                for event in events:
                    if event.kind == "error":
                        if out:
                            await _send_chunk(send, b"".join(out))
                        exchange.outcome, exchange.detail = Outcome.BACKEND_ERROR, _loggable(event.detail)
                        await self.gw.availability.record(route, target.id, failed=True)
                        await _send_stream_error(send, exchange, "")
                        return
                    out.append(event.sse())
                    exchange.chunks += event.kind == "chunk"
                if out:
                    await _send_chunk(send, out[0] if len(out) == 1 else b"".join(out))
                if translator.ended or not chunk:
                    break
            # The server reports the finished response to the watcher as a disconnect: no longer the client leaving.
            relaying = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await self.gw.availability.record(route, target.id, failed=False)
            exchange.outcome = Outcome.OK
        except ClientLeft:
            exchange.outcome = Outcome.CLIENT_CANCELLED
            response.close()  # closing the upstream connection cancels the request there
        except (UpstreamBroken, TimeoutError) as error:
            exchange.outcome = Outcome.BACKEND_TIMEOUT if isinstance(error, TimeoutError) else Outcome.BACKEND_ERROR
            exchange.detail = f"stream broke: {type(error).__name__}"
            await self.gw.availability.record(route, target.id, failed=True)
            await _send_stream_error(send, exchange, "")
        finally:
            relaying = False  # the connection may go back to the pool: a late callback must not touch it
            _take_usage(exchange, translator.usage)
            disconnect.cancel()


class ClientLeft(Exception):
    """The client closed its connection mid-stream."""


async def _send_chunk(send: Send, body: bytes) -> None:
    try:
        await send({"type": "http.response.body", "body": body, "more_body": True})
    except OSError:  # the server reports a vanished client this way
        raise ClientLeft from None


def _classify(error: BaseException) -> str:
    """connect: never reached the target (safe to retry elsewhere); timeout; broken: failed after sending; bug."""
    if isinstance(error, UpstreamConnectError):
        return "connect"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, UpstreamBroken):
        return "broken"
    return "bug"


def _loggable(detail: str) -> str:
    """An adapter's description of a bad answer without the quoted upstream text after it ("upstream error
    mid-stream: <what the router said>" becomes "upstream error mid-stream"): router messages can name hosts."""
    return detail.split(": ", 1)[0]


def _take_usage(exchange: Exchange, usage: dict[str, int] | None) -> None:
    """Token counts from the upstream's usage; a stream cut short before its usage arrived counts the chunks it
    relayed as completion tokens (one token per chunk is what router nodes stream), so partial answers still show."""
    if usage:
        exchange.prompt_tokens = usage.get("prompt_tokens")
        exchange.completion_tokens = usage.get("completion_tokens")
    elif exchange.chunks:
        exchange.completion_tokens = exchange.chunks


def _dumps(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send_stream_error(send: Send, exchange: Exchange, request_id: str) -> None:
    """An OpenAI-style error event that ends a stream already under way, then the end of the body."""
    code = Outcome.BACKEND_TIMEOUT.error_code if exchange.outcome is Outcome.BACKEND_TIMEOUT else "backend_error"
    exchange.error_code = code  # what the client was told, for the ledger
    kind = CATALOGUE[code]
    event = StreamEvent(
        "chunk",
        {
            "error": {
                "message": kind.message,
                "type": kind.type,
                "code": kind.code,
                "param": None,
                "category": kind.category,
                "next_step": kind.next_step,
            }
        },
    )
    try:
        await send({"type": "http.response.body", "body": event.sse(), "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except Exception:  # the client may be gone already
        log.debug("could not send the stream error event")


def _unmade_forwarded(
    accepted: LifecycleEvent, served_model: str, target_id: int | None, at_ms: int | None
) -> Callable[[], LifecycleEvent]:
    """How to make the `forwarded` event if the flush needs it. It holds the accepted event (a few strings and
    numbers), not the request: what waits for the flush must not keep the request's objects alive."""

    def make() -> LifecycleEvent:
        return LifecycleEvent(
            stage="forwarded",
            request_id=accepted.request_id,
            at_ms=at_ms if at_ms is not None else int(time.time() * 1000),
            organization_id=accepted.organization_id,
            key_id=accepted.key_id,
            user_id=accepted.user_id,
            model=accepted.model,
            plan=accepted.plan,
            served_model=served_model,
            target_id=target_id,
        )

    return make
