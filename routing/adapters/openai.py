"""The OpenAI-compatible protocol (vLLM, llama.cpp, Ollama, ...): `POST {base}/chat/completions` or `/completions`.

The request passes through with `model` rewritten to the upstream name and, when streaming,
`stream_options.include_usage` forced on so every request's tokens are counted. The usage chunk that the client did
not ask for is dropped on the way back, and the `usage: null` some servers add to every chunk with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.adapters.base import AdapterError, Kind, ResponseTranslator, UpstreamRequest, usage_from
from routing.table import AliasRoute, TargetEntry

PROTOCOL = "openai"
_PATHS: dict[str, str] = {"chat": "/chat/completions", "text": "/completions"}


def build_request(
    *,
    body: Mapping[str, Any],
    kind: Kind,
    alias: AliasRoute,
    target: TargetEntry,
    request_id: str,
    timeout_seconds: int,
) -> UpstreamRequest:
    if kind == "chat" and not isinstance(body.get("messages"), list):
        raise AdapterError("'messages' must be a list of message objects.")
    if kind == "text" and body.get("prompt") is None:
        raise AdapterError("'prompt' is required.")
    payload = dict(body)
    payload["model"] = alias.upstream_name
    stream = bool(payload.get("stream", False))
    options = payload.get("stream_options")
    asked = isinstance(options, Mapping) and bool(options.get("include_usage"))
    if stream:
        payload["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "X-Request-Id": request_id,
    }
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return UpstreamRequest(
        protocol=PROTOCOL,
        kind=kind,
        method="POST",
        url=target.base_url.rstrip("/") + _PATHS[kind],
        headers=headers,
        json=payload,
        stream=stream,
        include_usage=stream and asked,
        alias=alias.alias,
        request_id=request_id,
    )


class OpenAITranslator(ResponseTranslator):
    def map_full(self, data: dict[str, Any]) -> dict[str, Any]:
        return self._ours(data)

    def map_chunk(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        usage = usage_from(data.get("usage"))
        if usage is not None:
            self.usage = usage
        choices = data.get("choices")
        if isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") for c in choices):
            self.finished = True
        if not self.request.include_usage:
            if not choices and "usage" in data:
                return []  # the usage chunk we asked for on our own behalf
            data = {name: value for name, value in data.items() if name != "usage"}
        return [self._ours(data)]

    def _ours(self, data: dict[str, Any]) -> dict[str, Any]:
        mapped = dict(data)
        mapped.update(id=self.id, model=self.request.alias)
        mapped.setdefault("created", self.created)
        return mapped
