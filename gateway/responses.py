"""Sending whole responses over raw ASGI, with the headers every gateway response carries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway.errors import CATALOGUE, error_body

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Header = tuple[bytes, bytes]

JSON_HEADERS: list[Header] = [(b"content-type", b"application/json")]


async def send_bytes(
    send: Send, status: int, body: bytes, request_id: str, headers: Iterable[Header] = JSON_HEADERS
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    code: str,
    request_id: str,
    *,
    message: str | None = None,
    param: str | None = None,
    extra_headers: Iterable[Header] = (),
) -> None:
    kind = CATALOGUE[code]
    body = error_body(code, request_id, message=message, param=param)
    await send_bytes(send, kind.status, body, request_id, [*JSON_HEADERS, *extra_headers])
