"""Upstream protocol adapters: pure functions from an OpenAI request to a target's request, and back.

upstream = build_upstream_request(body=..., kind="chat", alias=route, target=target, request_id=rid,
                                  timeout_seconds=300)
# send upstream.method / .url / .headers / .content() with the gateway's client, then
translator = upstream.translator()
translator.map_body(raw_bytes)            # whole responses -> dict for the client
translator.feed(raw_bytes) / .finish()    # streams -> [StreamEvent]; event.sse() is what the client gets
translator.usage                          # token counts for metering
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from routing.adapters import cortensor, openai
from routing.adapters.base import (
    DONE,
    AdapterError,
    Kind,
    ResponseTranslator,
    StreamEvent,
    UpstreamError,
    UpstreamRequest,
    Usage,
)
from routing.table import AliasRoute, TargetEntry

__all__ = [
    "DONE",
    "AdapterError",
    "Kind",
    "ResponseTranslator",
    "StreamEvent",
    "UpstreamError",
    "UpstreamRequest",
    "Usage",
    "build_upstream_request",
    "translator_for",
]


def build_upstream_request(
    *,
    body: Mapping[str, Any],
    kind: Kind,
    alias: AliasRoute,
    target: TargetEntry,
    request_id: str,
    timeout_seconds: int,
) -> UpstreamRequest:
    """The request to send `target` for a client's chat (`/v1/chat/completions`) or text (`/v1/completions`) body.

    Raises AdapterError when the body cannot be expressed for the target's protocol."""
    builder = cortensor.build_request if target.protocol == cortensor.PROTOCOL else openai.build_request
    if target.protocol not in (cortensor.PROTOCOL, openai.PROTOCOL):
        raise ValueError(f"unknown protocol {target.protocol!r}")
    return builder(
        body=body, kind=kind, alias=alias, target=target, request_id=request_id, timeout_seconds=timeout_seconds
    )


def translator_for(request: UpstreamRequest, *, now: float | None = None) -> ResponseTranslator:
    if request.protocol == cortensor.PROTOCOL:
        return cortensor.CortensorTranslator(request, now=now)
    return openai.OpenAITranslator(request, now=now)
