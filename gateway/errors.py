"""The gateway's error catalogue: every refusal the /v1 surface can answer, in one place.

The envelope is OpenAI's (`error.message/type/code/param`) so SDKs raise the right exception class, plus the product
fields `category`, `next_step` and `request_id` (docs/architecture.md). Messages never name router hosts, session ids
or pool layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True)
class ErrorKind:
    code: str
    status: int
    type: str
    category: str
    message: str
    next_step: str


_KINDS = [
    ErrorKind(
        "invalid_api_key",
        401,
        "invalid_request_error",
        "authentication",
        "The API key is missing or not valid.",
        "Send a Portal API key as 'Authorization: Bearer ctx_live_...'; create one on the API keys page.",
    ),
    ErrorKind(
        "key_revoked",
        401,
        "invalid_request_error",
        "authentication",
        "This API key has been revoked.",
        "Create a new key on the API keys page and use it instead.",
    ),
    ErrorKind(
        "key_expired",
        401,
        "invalid_request_error",
        "authentication",
        "This API key has expired.",
        "Create a new key, or rotate this one, on the API keys page.",
    ),
    ErrorKind(
        "invalid_request",
        400,
        "invalid_request_error",
        "invalid_request",
        "The request is not valid.",
        "Fix the request as the message says and send it again.",
    ),
    ErrorKind(
        "request_too_large",
        413,
        "invalid_request_error",
        "invalid_request",
        "The request body is larger than the gateway accepts.",
        "Send a smaller request body.",
    ),
    ErrorKind(
        "method_not_allowed",
        405,
        "invalid_request_error",
        "invalid_request",
        "This method is not allowed on this path.",
        "Check the method against the API reference.",
    ),
    ErrorKind(
        "not_found",
        404,
        "invalid_request_error",
        "invalid_request",
        "There is no API endpoint at this path.",
        "Check the path against the API reference; endpoints live under /v1/.",
    ),
    ErrorKind(
        "model_not_found",
        404,
        "invalid_request_error",
        "invalid_request",
        "The model does not exist.",
        "List the models you can call with GET /v1/models.",
    ),
    ErrorKind(
        "model_not_allowed",
        403,
        "invalid_request_error",
        "authorization",
        "Your plan or this key does not allow this model.",
        "Use a model listed by GET /v1/models, or upgrade your plan.",
    ),
    ErrorKind(
        "insufficient_scope",
        403,
        "invalid_request_error",
        "authorization",
        "This API key may not call this endpoint.",
        "Use a key with the needed scope.",
    ),
    ErrorKind(
        "rate_limit_exceeded",
        429,
        "rate_limit_error",
        "rate_limit",
        "This API key is sending requests too quickly.",
        "Wait for the time in the Retry-After header, then retry.",
    ),
    ErrorKind(
        "too_many_invalid_keys",
        429,
        "rate_limit_error",
        "rate_limit",
        "Too many requests with invalid API keys came from your address.",
        "Check the key your client sends, then retry after the time in the Retry-After header.",
    ),
    ErrorKind(
        "quota_exhausted",
        429,
        "insufficient_quota",
        "quota",
        "Your organization has used its allowance for this window.",
        "Wait until the allowance comes back (Retry-After), or upgrade your plan.",
    ),
    ErrorKind(
        "no_healthy_backend",
        503,
        "api_error",
        "routing",
        "No backend is available for this model right now.",
        "Retry in a few seconds; this request was not counted against your allowance.",
    ),
    ErrorKind(
        "backend_error",
        502,
        "api_error",
        "backend",
        "The backend failed while running this request.",
        "Retry the request; it was not counted against your allowance.",
    ),
    ErrorKind(
        "backend_timeout",
        504,
        "api_error",
        "backend",
        "The backend did not answer in time.",
        "Retry the request, perhaps with a smaller max_tokens; it was not counted against your allowance.",
    ),
    ErrorKind(
        "service_unavailable",
        503,
        "api_error",
        "routing",
        "The gateway cannot take requests right now.",
        "Retry in a few seconds.",
    ),
]

CATALOGUE: dict[str, ErrorKind] = {kind.code: kind for kind in _KINDS}


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
