"""Structured logs: one JSON object per line (LOG_FORMAT=json, the production default), carrying the request id.

The request id comes from, in order: `extra={"request_id": ...}` on the call; the id of the request being served
(portal/request_context.py: the gateway's, a portal page's, or the one a Celery task was enqueued for); or, for
django.request's lines about a response (logged once the middleware has returned), the id kept on that request.
A line with none has no field. The message's arguments play no part.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from portal.request_context import request_id_var

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the line.
# Django's request logger adds the request object itself: its id is used, the object is left out.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id", "request"}


def record_request_id(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "request_id", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    current = request_id_var.get() or getattr(getattr(record, "request", None), "request_id", None)
    return str(current) if current else None


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
