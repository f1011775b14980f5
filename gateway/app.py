"""The gateway's ASGI application, mounted at /v1 by portal/asgi.py (docs/architecture.md: a raw ASGI app, not a view).

Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/usage. Every response, errors
included, carries `x-request-id`. Nothing here lets an exception escape as a stack trace: an unexpected error is
logged with its request id and answered 500-free as a backend error envelope.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from django.conf import settings

from apikeys.records import KeyRecord
from billing.allowances import request_limits, scope_for
from gateway.auth import AuthFailure, send_auth_failure
from gateway.completions import Completion
from gateway.keyscan import client_address
from gateway.responses import JSON_HEADERS, Receive, Send, send_bytes, send_error
from gateway.state import Gateway
from portal.request_context import request_id_var
from portal.request_ids import new_request_id
from routing.adapters.base import Kind

log = logging.getLogger(__name__)

POST_PATHS: dict[str, Kind] = {"/v1/chat/completions": "chat", "/v1/completions": "text"}
GET_PATHS = {"/v1/models", "/v1/usage"}
METRICS_PATH = "/metrics"

_gateway: Gateway | None = None


def gateway() -> Gateway:
    """This process's gateway state (made on first use, so an app served without lifespan events still works)."""
    global _gateway
    if _gateway is None:
        _gateway = Gateway()
    return _gateway


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await gateway().start()
            except Exception as error:
                log.exception("gateway start-up failed")
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await gateway().stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def application(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    request_id = new_request_id()
    gw = gateway()
    if not gw.started:
        await gw.start()
    # After start(): the background tasks it starts copy this context, and must not log as this request.
    token = request_id_var.set(request_id)
    path, method = scope["path"].rstrip("/") or "/", scope["method"]
    try:
        if path in POST_PATHS:
            if method != "POST":
                await send_error(send, "method_not_allowed", request_id, extra_headers=[(b"allow", b"POST")])
                return
            await Completion(gw, scope, receive, send, POST_PATHS[path], request_id).handle()
        elif path == METRICS_PATH and method in ("GET", "HEAD"):
            await _metrics(gw, scope, send, request_id)
        elif path in GET_PATHS:
            if method not in ("GET", "HEAD"):
                await send_error(send, "method_not_allowed", request_id, extra_headers=[(b"allow", b"GET")])
                return
            await (_models if path == "/v1/models" else _usage)(gw, scope, send, request_id)
        else:
            await send_error(send, "not_found", request_id)
    except Exception:
        log.exception("request %s failed unexpectedly", request_id)
        try:
            await send_error(send, "backend_error", request_id, message="The gateway failed on this request.")
        except Exception:  # headers were already sent; the connection closes
            log.debug("could not send the error response for %s", request_id)
    finally:
        request_id_var.reset(token)


async def _key(gw: Gateway, scope: dict[str, Any], send: Send, request_id: str) -> KeyRecord | None:
    """Steps 1 to 3 for the GET endpoints, by the same path as completions (`Gateway.authenticate`); None when the
    failure was answered."""
    auth = await gw.authenticate(dict(scope["headers"]), client_address(scope))
    if isinstance(auth, AuthFailure):
        await send_auth_failure(send, auth, request_id)
        return None
    return auth


async def _metrics(gw: Gateway, scope: dict[str, Any], send: Send, request_id: str) -> None:
    """Prometheus text; without the operator's token the endpoint does not exist (404, as any unknown path)."""
    token: str = settings.GATEWAY_METRICS_TOKEN
    presented = dict(scope["headers"]).get(b"authorization", b"")
    if not token or not hmac.compare_digest(presented, b"Bearer " + token.encode()):
        await send_error(send, "not_found", request_id)
        return
    body = await gw.metrics.render(gw.metrics_snapshot)
    await send_bytes(send, 200, body, request_id, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])


async def _models(gw: Gateway, scope: dict[str, Any], send: Send, request_id: str) -> None:
    """The aliases this key may call, in OpenAI's list shape."""
    key = await _key(gw, scope, send, request_id)
    if key is None:
        return
    plan = await gw.plans.get(key.organization_id)
    table = await gw.routing.table()
    data = [
        {"id": alias, "object": "model", "created": 0, "owned_by": "cortensor"}
        for alias in table.aliases()
        if plan.allows(alias) and (not key.allowed_models or alias in key.allowed_models)
    ]
    body = json.dumps({"object": "list", "data": data}, separators=(",", ":")).encode()
    await send_bytes(send, 200, body, request_id, JSON_HEADERS)


async def _usage(gw: Gateway, scope: dict[str, Any], send: Send, request_id: str) -> None:
    """This key's and its organization's allowance state, read from the same counters admission uses."""
    key = await _key(gw, scope, send, request_id)
    if key is None:
        return
    plan = await gw.plans.get(key.organization_id)
    limits = request_limits(plan=plan, key_id=key.id, key_limit=key.rate_limit_requests)
    now_ms = int(time.time() * 1000)
    states = await gw.engine.status(scope=scope_for(key.organization_id), limits=limits, now_ms=now_ms)
    body = json.dumps(
        {
            "object": "usage",
            "plan": {"slug": plan.slug, "name": plan.name},
            "limits": [
                {
                    "name": state.name,
                    "scope": "key" if state.name == "key_rate" else "organization",
                    "limit": state.limit,
                    "used": state.used,
                    "remaining": state.remaining,
                    "window_seconds": state.window_ms // 1000,
                    "next_unit_at": _iso(state.next_free_at_ms),
                    "resets_at": _iso(state.clear_at_ms),
                    "unknown": state.degraded,
                }
                for state in states
            ],
        },
        separators=(",", ":"),
    ).encode()
    await send_bytes(send, 200, body, request_id, JSON_HEADERS)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
