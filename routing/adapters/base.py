"""What every upstream adapter shares: the request it builds, the events it gives back, and the translator frame.

Adapters are pure: no network, no database, no settings. The gateway sends `UpstreamRequest` with its own client and
feeds what comes back into `request.translator()`. Everything a translator returns is safe to send to the client:
ids and `model` are ours, never the upstream's, and upstream error texts (which can name hosts or sessions) are kept
in `detail`, for logs only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from routing.adapters.sse import SSEError, SSEParser

Kind = Literal["chat", "text"]
Usage = dict[str, int]
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
DONE = b"data: [DONE]\n\n"


class AdapterError(ValueError):
    """The client's request cannot be expressed for this upstream (the gateway answers 400 invalid_request)."""


class UpstreamError(Exception):
    """The upstream answered something that is not a usable completion (the gateway answers 502 backend_error).

    The message is for logs; it may contain upstream details and must not be sent to clients."""


# The two value types made per request and per streamed event are treated as immutable but not frozen: a frozen
# dataclass's __init__ sets each field through object.__setattr__, several times slower.
@dataclass(slots=True)
class StreamEvent:
    kind: Literal["chunk", "done", "error"]
    payload: dict[str, Any] | None = None
    detail: str = ""  # error events: the upstream's own words, for logs only

    def sse(self) -> bytes:
        """The bytes to send the client for a chunk or the end; error events are the gateway's to phrase."""
        if self.kind == "done":
            return DONE
        if self.kind == "chunk" and self.payload is not None:
            return b"data: " + orjson.dumps(self.payload) + b"\n\n"
        raise ValueError("an error event is rendered by the gateway's error catalogue")


def usage_from(value: Any) -> Usage | None:
    """The token counts of an upstream `usage` object (parsed JSON), or None when it carries none."""
    if not isinstance(value, dict):
        return None
    usage = {name: value[name] for name in USAGE_FIELDS if isinstance(value.get(name), int)}
    if not usage:
        return None
    if "total_tokens" not in usage:
        usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    return usage


def response_id(kind: Kind, request_id: str) -> str:
    return f"chatcmpl-{request_id}" if kind == "chat" else f"cmpl-{request_id}"


def error_detail(value: Any) -> str:
    if isinstance(value, Mapping):
        error = value.get("error", value)
        if isinstance(error, Mapping):
            return str(error.get("message") or error.get("code") or error)[:500]
        return str(error)[:500]
    return str(value)[:500]


@dataclass(slots=True)
class UpstreamRequest:
    protocol: str
    kind: Kind
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)  # carries the router key: never log it
    json: dict[str, Any]
    stream: bool
    include_usage: bool  # the client asked for the usage chunk (stream_options.include_usage)
    alias: str
    request_id: str

    def content(self) -> bytes:
        return orjson.dumps(self.json)

    def translator(self, *, now: float | None = None) -> ResponseTranslator:
        from routing.adapters import translator_for  # the registry lives beside the protocols

        return translator_for(self, now=now)


class ResponseTranslator:
    """Maps one upstream response (whole, or streamed and fed in pieces) back to the OpenAI shape of our alias.

    `usage` holds the token counts once the upstream has sent them, whether or not the client sees them."""

    def __init__(self, request: UpstreamRequest, *, now: float | None = None) -> None:
        self.request = request
        self.id = response_id(request.kind, request.request_id)
        self.created = int(now if now is not None else time.time())
        self.usage: Usage | None = None
        self.finished = False  # a finish_reason was seen
        self.ended = False  # [DONE] or an error was seen: later bytes are ignored
        self._parser = SSEParser()

    # -- whole responses ------------------------------------------------------------------------------------

    def map_body(self, body: bytes | Mapping[str, Any]) -> dict[str, Any]:
        data = _decode(body)
        if "error" in data:
            raise UpstreamError(f"upstream error: {error_detail(data)}")
        if not isinstance(data.get("choices"), list):
            raise UpstreamError("upstream response has no choices")
        self.usage = usage_from(data.get("usage"))
        mapped = self.map_full(data)
        if self.usage is not None:
            mapped["usage"] = dict(self.usage)
        return mapped

    def map_full(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # -- streams --------------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self.ended:
            return []
        try:
            messages = self._parser.feed(data)
        except SSEError as error:
            return self._fail(str(error))
        return self._events(messages)

    def finish(self) -> list[StreamEvent]:
        """The upstream closed the stream. Without [DONE] or a finish_reason the answer is cut short: an error."""
        if self.ended:
            return []
        events = self._events(self._parser.close())
        if self.ended:
            return events
        if self.finished:
            self.ended = True
            return [*events, *self.tail(), StreamEvent("done")]
        return [*events, *self._fail("the upstream stream ended before the answer was complete")]

    def map_chunk(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def tail(self) -> list[StreamEvent]:
        """Chunks owed to the client before [DONE] (the usage chunk when the protocol does not send one)."""
        return []

    def _events(self, messages: list[Any]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for message in messages:
            if self.ended:
                break
            text = message.data.strip()
            if text == "[DONE]":
                self.ended = True
                events.extend(self.tail())
                events.append(StreamEvent("done"))
                break
            if not text:
                continue
            try:
                data = orjson.loads(text)
            except ValueError:
                events.extend(self._fail(f"upstream sent an event that is not JSON: {text[:200]!r}"))
                break
            if message.event == "error" or not isinstance(data, dict) or "error" in data:
                events.extend(self._fail(f"upstream error mid-stream: {error_detail(data)}"))
                break
            events.extend(StreamEvent("chunk", payload) for payload in self.map_chunk(data))
        return events

    def _fail(self, detail: str) -> list[StreamEvent]:
        self.ended = True
        return [StreamEvent("error", detail=detail)]


def _decode(body: bytes | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(body, Mapping):
        return dict(body)
    try:
        data = orjson.loads(body)
    except ValueError:
        raise UpstreamError(f"upstream response is not JSON: {body[:200]!r}") from None
    if not isinstance(data, dict):
        raise UpstreamError("upstream response is not a JSON object")
    return data
