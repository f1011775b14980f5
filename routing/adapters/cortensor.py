"""The Cortensor router protocol: `POST {base}/api/v1/completions/{session_id}`, text-completion shape.

Chat requests are flattened into one prompt with the alias's template (routing/prompts.py); the answer, whole or
streamed, is mapped back to `chat.completion(.chunk)` or `text_completion` under our alias name. A router node sends
`usage` on its last chunk; clients get it in OpenAI's separate usage chunk, and only when they asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.adapters.base import AdapterError, Kind, ResponseTranslator, StreamEvent, UpstreamRequest, usage_from
from routing.prompts import flatten_messages
from routing.table import AliasRoute, TargetEntry

PROTOCOL = "cortensor"
_SAMPLING = ("temperature", "top_p")


def build_request(
    *,
    body: Mapping[str, Any],
    kind: Kind,
    alias: AliasRoute,
    target: TargetEntry,
    request_id: str,
    timeout_seconds: int,
) -> UpstreamRequest:
    if target.session_id is None:
        raise ValueError(f"cortensor target {target.id} has no session id")
    payload: dict[str, Any] = {"prompt": _prompt(body, kind, alias.prompt_template)}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    for name in _SAMPLING:
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("n") not in (None, 1):
        raise AdapterError("This model returns one choice per request; leave 'n' out or set it to 1.")
    stream = bool(body.get("stream", False))
    payload.update(stream=stream, timeout=timeout_seconds, client_reference=request_id)
    options = body.get("stream_options")
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    return UpstreamRequest(
        protocol=PROTOCOL,
        kind=kind,
        method="POST",
        url=f"{target.base_url.rstrip('/')}/api/v1/completions/{target.session_id}",
        headers=headers,
        json=payload,
        stream=stream,
        include_usage=stream and isinstance(options, Mapping) and bool(options.get("include_usage")),
        alias=alias.alias,
        request_id=request_id,
    )


def _prompt(body: Mapping[str, Any], kind: Kind, template: str) -> str:
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, Mapping) for m in messages):
            raise AdapterError("'messages' must be a non-empty list of message objects.")
        return flatten_messages(messages, template)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise AdapterError("This model takes one prompt per request; send 'prompt' as a string.")
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise AdapterError("'prompt' must be a non-empty string.")
    return prompt


class CortensorTranslator(ResponseTranslator):
    def __init__(self, request: UpstreamRequest, *, now: float | None = None) -> None:
        super().__init__(request, now=now)
        self._role_sent = False

    def map_full(self, data: dict[str, Any]) -> dict[str, Any]:
        chat = self.request.kind == "chat"
        choices = []
        for position, choice in enumerate(data["choices"]):
            choice = choice if isinstance(choice, dict) else {}
            mapped: dict[str, Any] = {"index": choice.get("index", position)}
            text = str(choice.get("text") or "")
            if chat:
                mapped["message"] = {"role": "assistant", "content": text}
            else:
                mapped["text"] = text
            mapped["finish_reason"] = choice.get("finish_reason") or "stop"
            mapped["logprobs"] = None
            choices.append(mapped)
        return self._envelope("chat.completion" if chat else "text_completion", choices)

    def map_chunk(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        usage = usage_from(data.get("usage"))
        if usage is not None:
            self.usage = usage
        chat = self.request.kind == "chat"
        choices = []
        for position, choice in enumerate(data.get("choices") or ()):
            choice = choice if isinstance(choice, dict) else {}
            text = str(choice.get("text") or "")
            finish = choice.get("finish_reason")
            if finish:
                self.finished = True
            mapped: dict[str, Any] = {"index": choice.get("index", position)}
            if chat:
                delta: dict[str, Any] = {}
                if not self._role_sent:
                    delta["role"] = "assistant"
                    self._role_sent = True
                if text or "role" in delta:
                    delta["content"] = text
                mapped["delta"] = delta
            else:
                mapped["text"] = text
            mapped.update(finish_reason=finish or None, logprobs=None)
            choices.append(mapped)
        if not choices:
            return []
        return [self._envelope("chat.completion.chunk" if chat else "text_completion", choices)]

    def tail(self) -> list[StreamEvent]:
        if not self.request.include_usage or self.usage is None:
            return []
        kind = "chat.completion.chunk" if self.request.kind == "chat" else "text_completion"
        return [StreamEvent("chunk", {**self._envelope(kind, []), "usage": dict(self.usage)})]

    def _envelope(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.request.alias, "choices": choices}
