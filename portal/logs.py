"""Structured logs: one JSON object per line (LOG_FORMAT=json, the production default), carrying the request id.

The request id comes from, in order: `extra={"request_id": ...}` on the call; the id of the portal request being
served (RequestIdMiddleware keeps it in a context variable); or a gateway request id passed as a log argument
(`log.warning("request %s ...", request_id)`, how the gateway names its requests). A line with none has no field.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from portal.request_ids import new_request_id

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

_GATEWAY_ID = re.compile(r"^req_[0-9A-HJKMNP-TV-Z]{26}$")
# What a client may send as X-Request-ID to follow its own id through our logs; anything else is replaced.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the line.
# Django's request logger adds the request object itself: its id is used, the object is left out.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id", "request"}


def record_request_id(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "request_id", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    current = current_request_id.get() or getattr(getattr(record, "request", None), "request_id", None)
    if current:
        return str(current)
    args = record.args if isinstance(record.args, tuple) else ()
    for arg in args:
        if isinstance(arg, str) and _GATEWAY_ID.match(arg):
            return arg
    return None


class RequestIdFilter(logging.Filter):
    """Puts `record.request_id` on every record (None when unknown), for any formatter to use."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = record_request_id(record)
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", "request_id"?, "exception"?, ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = record_request_id(record)
        if request_id:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value if isinstance(value, str | int | float | bool | None) else repr(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class RequestIdMiddleware:
    """Gives each portal request an id (the client's or the proxy's X-Request-ID when it is a sane one, so one id
    follows a request from the load balancer's log to ours) and puts it on every line logged while serving it.
    Not echoed as a response header: that header marks the gateway's answers (tests/portal/test_asgi.py)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _CLIENT_ID.match(offered) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]  # for django.request's lines, logged later
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        return response
