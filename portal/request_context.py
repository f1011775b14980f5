"""The id of the request being served, in a context variable that portal/logs.py reads, so every line logged while
serving a request carries its id whatever the message's arguments.

Set where a request starts: the gateway's ASGI application (gateway/app.py), `RequestIdMiddleware` below for the
portal's pages, and a Celery task enqueued while serving a request (portal/celery.py carries the id in the task's
headers). asyncio tasks and `sync_to_async` threads copy the context they start in, so work done for a request
carries its id; the gateway therefore starts its background tasks before it sets the id, and every setter resets
the variable with its token when the request ends, so no id outlives its request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING

from portal.request_ids import new_request_id

if TYPE_CHECKING:  # imported by the logging configuration and Celery's app: no Django imports at run time
    from django.http import HttpRequest, HttpResponse

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# What a client may send as X-Request-ID to follow its own id through our logs; anything else is replaced.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def current_request_id() -> str | None:
    return request_id_var.get()


def sane_request_id(value: object) -> str | None:
    """An id offered from outside (a header, a task's headers) when it is one we may log as it is."""
    return value if isinstance(value, str) and _CLIENT_ID.match(value) else None


class RequestIdMiddleware:
    """Gives each portal request an id (the client's or the proxy's X-Request-ID when it is a sane one, so one id
    follows a request from the load balancer's log to ours) and puts it on every line logged while serving it.
    Not echoed as a response header: that header marks the gateway's answers (tests/portal/test_asgi.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.headers.get("X-Request-ID")) or new_request_id()
        # On the request too, for django.request's lines about the response, logged after this returns.
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            return self.get_response(request)
        finally:
            request_id_var.reset(token)
