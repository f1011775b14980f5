"""The gateway's ASGI application, mounted at /v1 by portal/asgi.py.

Until the inference pipeline lands, every /v1 path answers the product error envelope with 404, so clients and
SDKs already see the final error shape and an `x-request-id`.
"""

from __future__ import annotations

from typing import Any

from gateway.request_ids import new_request_id
from gateway.responses import send_error


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    request_id = new_request_id()
    await send_error(send, "not_found", request_id)
