"""The sandbox router: a stand-in for a Cortensor router node and an OpenAI-compatible server, in one ASGI app.

It is what the demo, the tests and the benchmarks run against (`manage.py run_sandbox_router`). It speaks:

- the Cortensor router face: `POST /api/v1/completions/{session_id}` and `POST /api/v1/completions` (session id
  in the body), Bearer router key, OpenAI text-completion shape, SSE with `stream: true`; `GET /api/v1/ping`,
  `GET /api/v1/status`;
- the OpenAI face: `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`, SSE with a final usage
  chunk when `stream_options.include_usage` is set.

Output is deterministic (a function of the prompt), so tests can assert on it. Faults are injected from the
configuration, which can be changed while it runs through `POST /_sandbox/config` (Bearer router key):
latency before the first byte, a delay per token, an error rate with a status code, hanging, and breaking a stream
after some tokens (an error event or a dropped connection). `GET /_sandbox/stats` counts what it saw.

It imports nothing from Django so it starts in a fraction of a second and can run beside any test.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

DEFAULT_KEY = "sandbox-router-key"
MAX_BODY = 4 * 1024 * 1024
HANG_SECONDS = 3600.0

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_VOCABULARY = tuple(
    (
        "the quick brown fox jumps over a lazy dog while routers agree on answers and miners validate "
        "each token with care so every request finds a healthy node in its pool"
    ).split()
)


@dataclass
class SandboxConfig:
    key: str = DEFAULT_KEY
    models: list[str] = field(default_factory=lambda: ["gpt-oss-20b", "gemma-4-26b"])
    latency_ms: float = 0.0  # before the response starts
    token_delay_ms: float = 0.0  # between streamed chunks
    error_rate: float = 0.0  # share of requests answered with error_status
    error_status: int = 500
    error_message: str = "Injected failure."  # the injected error's message (a real router's can name its hosts)
    hang: bool = False  # accept the request and never answer
    fail_after_tokens: int = -1  # >= 0: break a stream after this many content chunks
    fail_mode: str = "error"  # "error": an SSE error event, then the end; "drop": the connection is cut
    seed: int = 0

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(current, (int, float)) and not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number")
            elif isinstance(current, str) and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            elif isinstance(current, list) and not (
                isinstance(value, list) and all(isinstance(item, str) for item in value)
            ):
                raise ValueError(f"{name} must be a list of strings")
            setattr(self, name, value)
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be between 0 and 1")
        if self.fail_mode not in ("error", "drop"):
            raise ValueError("fail_mode must be 'error' or 'drop'")

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("key")
        return data


@dataclass
class SandboxStats:
    requests: int = 0
    completions: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    errors_injected: int = 0
    last_client_reference: str | None = None
    last_body: dict[str, Any] | None = None


class ClientGone(Exception):
    """The client closed the connection while we were streaming."""


class DroppedOnPurpose(Exception):
    """Raised to make the server cut the connection mid-stream (fail_mode 'drop')."""


def prompt_tokens(text: str) -> int:
    return max(1, len(text.split()))


def completion_words(prompt: str, count: int) -> list[str]:
    """The deterministic answer to a prompt: `count` words picked by hashing the prompt."""
    digest = hashlib.sha256(prompt.encode()).digest()
    words = []
    for index in range(count):
        byte = digest[index % len(digest)] ^ (index * 7 & 0xFF)
        words.append(_VOCABULARY[byte % len(_VOCABULARY)])
    return words


def flatten_messages(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, list):  # content parts: keep the text ones
            content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        parts.append(f"{message.get('role', 'user')}: {content}")
    return "\n".join(parts)


def _json(status: int, payload: dict[str, Any]) -> tuple[int, bytes]:
    return status, json.dumps(payload, separators=(",", ":")).encode()


def _error(status: int, message: str, code: str) -> tuple[int, bytes]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return _json(status, {"error": {"message": message, "type": kind, "code": code, "param": None}})


@dataclass
class _Completion:
    """What one request asked for, whichever face it came through."""

    face: str  # "cortensor" or "openai"
    kind: str  # "chat" or "text"
    model: str
    prompt: str
    max_tokens: int
    stream: bool
    include_usage: bool
    client_reference: str | None


class SandboxRouter:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.stats = SandboxStats()
        self._random = random.Random(self.config.seed)  # noqa: S311  (fault injection, not security)
        self.started = time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        self.stats.requests += 1
        method, path = scope["method"], scope["path"]
        headers = dict(scope["headers"])

        if method == "GET" and path == "/api/v1/ping":
            return await self._respond(send, *_json(200, {"status": "ok", "message": "pong"}))
        if method == "GET" and path == "/api/v1/status":
            return await self._respond(send, *self._status())

        if not self._authorized(headers):
            return await self._respond(send, *_error(401, "Invalid or missing router key.", "invalid_router_key"))

        if path == "/_sandbox/config":
            return await self._config_endpoint(method, receive, send)
        if method == "GET" and path == "/_sandbox/stats":
            return await self._respond(send, *_json(200, asdict(self.stats)))
        if method == "GET" and path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "sandbox"} for name in self.config.models]
            return await self._respond(send, *_json(200, {"object": "list", "data": data}))

        route = self._route(method, path)
        if route is None:
            known = path in ("/v1/chat/completions", "/v1/completions") or path.startswith("/api/v1/completions")
            if known:
                return await self._respond(send, *_error(405, "Method not allowed.", "method_not_allowed"))
            return await self._respond(send, *_error(404, "Not found.", "not_found"))

        body = await _read_body(receive)
        if body is None:
            return await self._respond(send, *_error(413, "Body too large.", "request_too_large"))
        try:
            payload = json.loads(body or b"{}")
            if not isinstance(payload, dict):
                raise ValueError
        except ValueError:
            return await self._respond(send, *_error(400, "Body must be a JSON object.", "invalid_json"))
        self.stats.last_body = payload

        completion_or_error = route(payload, path)
        if isinstance(completion_or_error, tuple):
            return await self._respond(send, *completion_or_error)
        await self._serve(completion_or_error, receive, send)

    # -- routing -------------------------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Callable[[dict[str, Any], str], Any] | None:
        if method != "POST":
            return None
        if path == "/v1/chat/completions":
            return self._parse_openai_chat
        if path == "/v1/completions":
            return self._parse_openai_text
        if path == "/api/v1/completions" or path.startswith("/api/v1/completions/"):
            return self._parse_cortensor
        return None

    def _parse_cortensor(self, payload: dict[str, Any], path: str) -> _Completion | tuple[int, bytes]:
        session = path.removeprefix("/api/v1/completions").strip("/") or payload.get("session_id")
        if session in (None, ""):
            return _error(400, "A session id is required (in the path or as session_id).", "missing_session")
        if not str(session).isdigit():
            return _error(400, "The session id must be a number.", "invalid_session")
        prompt = payload.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "'prompt' must be a non-empty string.", "invalid_prompt")
        return self._completion("text", payload, prompt, f"cortensor-session-{session}")

    def _parse_openai_chat(self, payload: dict[str, Any], path: str) -> _Completion | tuple[int, bytes]:
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _error(400, "'messages' must be a non-empty list of objects.", "invalid_messages")
        return self._completion("chat", payload, flatten_messages(messages), None)

    def _parse_openai_text(self, payload: dict[str, Any], path: str) -> _Completion | tuple[int, bytes]:
        prompt = payload.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(str(item) for item in prompt)
        if not isinstance(prompt, str) or not prompt:
            return _error(400, "'prompt' must be a non-empty string.", "invalid_prompt")
        return self._completion("text", payload, prompt, None)

    def _completion(
        self, kind: str, payload: dict[str, Any], prompt: str, default_model: str | None
    ) -> _Completion | tuple[int, bytes]:
        model = payload.get("model") or default_model
        if not isinstance(model, str):
            return _error(400, "'model' is required.", "missing_model")
        if default_model is None and model not in self.config.models:
            return _error(404, f"The model {model!r} does not exist.", "model_not_found")
        max_tokens = payload.get("max_tokens", payload.get("max_completion_tokens", 16))
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= 4096:
            return _error(400, "'max_tokens' must be an integer from 1 to 4096.", "invalid_max_tokens")
        options = payload.get("stream_options") or {}
        reference = payload.get("client_reference")
        return _Completion(
            face="openai" if default_model is None else "cortensor",
            kind=kind,
            model=model,
            prompt=prompt,
            max_tokens=max_tokens,
            stream=bool(payload.get("stream", False)),
            include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
            client_reference=str(reference) if reference is not None else None,
        )

    # -- serving -------------------------------------------------------------------------------------------

    async def _serve(self, request: _Completion, receive: Receive, send: Send) -> None:
        config = self.config
        self.stats.completions += 1
        self.stats.last_client_reference = request.client_reference
        if config.hang:
            await _sleep_until_disconnect(receive, HANG_SECONDS)
            return
        if config.latency_ms > 0:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.error_rate > 0 and self._random.random() < config.error_rate:
            self.stats.errors_injected += 1
            status = config.error_status
            return await self._respond(send, *_error(status, config.error_message, "sandbox_injected_failure"))

        words = completion_words(request.prompt, request.max_tokens)
        usage = {
            "prompt_tokens": prompt_tokens(request.prompt),
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens(request.prompt) + len(words),
        }
        ident = "cmpl-" + hashlib.sha256(f"{request.prompt}|{time.time_ns()}".encode()).hexdigest()[:24]
        if request.stream:
            await self._stream(request, ident, words, usage, receive, send)
        else:
            text = " ".join(words)
            await self._respond(send, *_json(200, _full_response(request, ident, text, usage)))

    async def _stream(
        self,
        request: _Completion,
        ident: str,
        words: list[str],
        usage: dict[str, int],
        receive: Receive,
        send: Send,
    ) -> None:
        config = self.config
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        disconnect = asyncio.ensure_future(_wait_disconnect(receive))
        created = int(time.time())
        try:
            if request.kind == "chat":
                first = _chunk(request, ident, created, {"role": "assistant", "content": ""}, None)
                await _send_event(send, first, disconnect)
            for index, word in enumerate(words):
                if config.fail_after_tokens >= 0 and index >= config.fail_after_tokens:
                    self.stats.errors_injected += 1
                    if config.fail_mode == "drop":
                        raise DroppedOnPurpose
                    error = {
                        "error": {
                            "message": "Injected failure mid-stream.",
                            "type": "server_error",
                            "code": "sandbox_injected_failure",
                            "param": None,
                        }
                    }
                    await _send_event(send, error, disconnect)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
                if index and config.token_delay_ms > 0:
                    await asyncio.sleep(config.token_delay_ms / 1000)
                piece = word if index == 0 else " " + word
                delta: dict[str, Any] = {"content": piece} if request.kind == "chat" else {"text": piece}
                await _send_event(send, _chunk(request, ident, created, delta, None), disconnect)
            final = _chunk(request, ident, created, {} if request.kind == "chat" else {"text": ""}, "length")
            if request.face == "cortensor":  # a router node sends usage on its last chunk
                final["usage"] = usage
            await _send_event(send, final, disconnect)
            if request.include_usage:
                usage_chunk = _chunk(request, ident, created, None, None)
                usage_chunk["choices"] = []
                usage_chunk["usage"] = usage
                await _send_event(send, usage_chunk, disconnect)
            await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
            self.stats.streams_completed += 1
        except ClientGone:
            self.stats.streams_cancelled += 1
        finally:
            disconnect.cancel()

    # -- control -------------------------------------------------------------------------------------------

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        supplied = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, token = supplied.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self.config.key)

    def _status(self) -> tuple[int, bytes]:
        return _json(
            200,
            {
                "status": "ok",
                "uptime_seconds": round(time.time() - self.started, 3),
                "models": self.config.models,
                "requests": self.stats.requests,
            },
        )

    async def _config_endpoint(self, method: str, receive: Receive, send: Send) -> None:
        if method == "POST":
            body = await _read_body(receive)
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object")
                reset_stats = bool(changes.pop("reset_stats", False))
                self.config.update(changes)
            except ValueError as error:
                return await self._respond(send, *_error(400, str(error), "invalid_config"))
            if "seed" in changes:
                self._random.seed(self.config.seed)
            if reset_stats:
                self.stats = SandboxStats()
        elif method != "GET":
            return await self._respond(send, *_error(405, "Method not allowed.", "method_not_allowed"))
        await self._respond(send, *_json(200, self.config.public()))

    @staticmethod
    async def _respond(send: Send, status: int, body: bytes) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _full_response(request: _Completion, ident: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
    if request.kind == "chat":
        choice["message"] = {"role": "assistant", "content": text}
        obj = "chat.completion"
        ident = "chatcmpl-" + ident.removeprefix("cmpl-")
    else:
        choice["text"] = text
        obj = "text_completion"
    return {
        "id": ident,
        "object": obj,
        "created": int(time.time()),
        "model": request.model,
        "choices": [choice],
        "usage": usage,
    }


def _chunk(
    request: _Completion, ident: str, created: int, delta: dict[str, Any] | None, finish: str | None
) -> dict[str, Any]:
    if request.kind == "chat":
        choice: dict[str, Any] = {"index": 0, "delta": delta or {}, "finish_reason": finish, "logprobs": None}
        return {
            "id": "chatcmpl-" + ident.removeprefix("cmpl-"),
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": [choice],
        }
    choice = {"index": 0, "text": (delta or {}).get("text", ""), "finish_reason": finish, "logprobs": None}
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": request.model,
        "choices": [choice],
    }


async def _send_event(send: Send, payload: dict[str, Any], disconnect: asyncio.Future[None]) -> None:
    if disconnect.done():
        raise ClientGone
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _read_body(receive: Receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _sleep_until_disconnect(receive: Receive, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_wait_disconnect(receive), timeout=seconds)
