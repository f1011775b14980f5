"""A backend's reason for refusing a request, made safe to show the client.

"max_tokens must be at most 4096" tells the client what to fix; "session 12 on router 10.0.0.5:5010 is full" tells
them our pool's layout. A reason is passed on only when it is short, printable, and names nothing that looks like a
host, an address, a path, a port or a Cortensor session, miner or router; otherwise the client gets the generic
sentence and the log keeps only the status and size (docs/gateway.md, "Errors").
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_LENGTH = 200

_REVEALING = re.compile(
    r"""
    [a-z][a-z0-9+.-]*://                      # a URL
    | \b\d{1,3}(?:\.\d{1,3}){3}\b             # an IPv4 address
    | [0-9a-f]{0,4}:[0-9a-f]{0,4}:[0-9a-f:]*  # an IPv6 address
    | \b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b  # a host name
    | :\d{2,5}\b                              # a port
    | [/\\]                                   # a path
    | \b(?:session|miner|router|node|host|upstream|localhost)s?\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def backend_refusal_message(body: bytes) -> str:
    """The refusal's message from an OpenAI-style (`{"error": {"message": ...}}`) or plain (`{"message": ...}`,
    `{"detail": ...}`) error body, or "" when there is none that is safe to show."""
    try:
        data: Any = orjson.loads(body)
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    error = data.get("error", data)
    message = error.get("message") or error.get("detail") if isinstance(error, dict) else error
    if not isinstance(message, str):
        return ""
    message = " ".join(message.split())
    if not message or len(message) > MAX_LENGTH or not message.isprintable() or _REVEALING.search(message):
        return ""
    return message.rstrip(".")
