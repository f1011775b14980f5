"""The gateway's error rendering: the `/v1` envelope for a code of the product's error catalogue.

The catalogue itself (codes, statuses, messages, next steps) is portal/error_catalogue.py, shared with metering,
which stores the code a request ended with and explains it in the request log. The envelope is OpenAI's
(`error.message/type/code/param`) so SDKs raise the right exception class, plus the product fields `category`,
`next_step` and `request_id` (docs/architecture.md).
"""

from __future__ import annotations

import orjson

from portal.error_catalogue import CATALOGUE, ErrorKind

__all__ = ["CATALOGUE", "ErrorKind", "error_body"]


def error_body(code: str, request_id: str, *, message: str | None = None, param: str | None = None) -> bytes:
    kind = CATALOGUE[code]
    return orjson.dumps(
        {
            "error": {
                "message": message or kind.message,
                "type": kind.type,
                "code": kind.code,
                "param": param,
                "category": kind.category,
                "next_step": kind.next_step,
                "request_id": request_id,
            }
        }
    )
