"""Every error the product can give a request, in one place: what the `/v1` gateway answers and what the request
log says about it afterwards.

Keyed by the error code the client receives (`error.code`). Each entry holds the `/v1` envelope's fields (HTTP
status, OpenAI `type`, product `category`, default `message`, `next_step`; docs/architecture.md, "Errors") and the
request log's words for the same refusal, read later by the person who owns the key (`log_title`, `log_what`,
`log_next_step`). The
gateway renders the envelope (gateway/errors.py); the ledger stores the code (`UsageEvent.error_code`) and metering
explains a row from it (metering/explanations.py). Both import this module and nothing here imports either of them.

Plain data and one dict: the gateway looks an entry up on every refusal, so this module imports no Django. Messages
never name router hosts, session ids or pool layout.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorKind:
    code: str
    status: int
    type: str  # OpenAI's error type: what SDKs pick the exception class by
    category: str
    message: str  # the envelope's message when the gateway gives no more precise one
    next_step: str  # the envelope's: addressed to the caller holding the response
    log_title: str  # the request log's heading, after the fact
    log_what: str  # the request log's "what happened"
    log_next_step: str = ""  # the request log's "what to do", when it differs from next_step

    @property
    def log_advice(self) -> str:
        return self.log_next_step or self.next_step


_KINDS = (
    ErrorKind(
        "invalid_api_key",
        401,
        "invalid_request_error",
        "authentication",
        "The API key is missing or not valid.",
        "Send a Portal API key as 'Authorization: Bearer ctx_live_...'; create one on the API keys page.",
        "Unknown key",
        "The key sent is not one of ours: it was missing, mistyped, or never existed.",
        "Check the key for a typo (copy the whole key again), or create one on the API keys page.",
    ),
    ErrorKind(
        "key_revoked",
        401,
        "invalid_request_error",
        "authentication",
        "This API key has been revoked.",
        "Create a new key on the API keys page and use it instead.",
        "Revoked key",
        "This key was revoked, so the request was turned away before anything ran; a revoked key never works again.",
    ),
    ErrorKind(
        "key_expired",
        401,
        "invalid_request_error",
        "authentication",
        "This API key has expired.",
        "Create a new key, or rotate this one, on the API keys page.",
        "Expired key",
        "This key had passed its expiry date, so the request was turned away before anything ran.",
    ),
    ErrorKind(
        "invalid_request",
        400,
        "invalid_request_error",
        "invalid_request",
        "The request is not valid.",
        "Fix the request as the message says and send it again.",
        "The request was not valid",
        "The body was not what the API expects: a field was missing, had the wrong type or value, or the JSON was "
        "broken.",
        "Fix the request as the error message in the response says, then send it again.",
    ),
    ErrorKind(
        "request_too_large",
        413,
        "invalid_request_error",
        "invalid_request",
        "The request body is larger than the gateway accepts.",
        "Send a smaller request body.",
        "The request was too large",
        "The request body was larger than the gateway accepts.",
        "Send a shorter conversation or prompt.",
    ),
    ErrorKind(
        "method_not_allowed",
        405,
        "invalid_request_error",
        "invalid_request",
        "This method is not allowed on this path.",
        "Check the method against the API reference.",
        "Wrong method",
        "The endpoint does not take this HTTP method.",
    ),
    ErrorKind(
        "not_found",
        404,
        "invalid_request_error",
        "invalid_request",
        "There is no API endpoint at this path.",
        "Check the path against the API reference; endpoints live under /v1/.",
        "No such endpoint",
        "There is no API endpoint at the path the request was sent to.",
    ),
    ErrorKind(
        "model_not_found",
        404,
        "invalid_request_error",
        "invalid_request",
        "The model does not exist.",
        "List the models you can call with GET /v1/models.",
        "The model does not exist",
        "No model by that name is in the catalog.",
        "Use a name from the Models page or from GET /v1/models.",
    ),
    ErrorKind(
        "model_not_allowed",
        403,
        "invalid_request_error",
        "authorization",
        "Your plan or this key does not allow this model.",
        "Use a model listed by GET /v1/models, or upgrade your plan.",
        "This model is not allowed",
        "Your plan, or this key's list of allowed models, does not include the model asked for.",
        "Pick a model your plan includes (see the Models page), change the key's allowed models, or upgrade.",
    ),
    ErrorKind(
        "insufficient_scope",
        403,
        "invalid_request_error",
        "authorization",
        "This API key may not call this endpoint.",
        "Use a key with the needed scope.",
        "This key may not call this endpoint",
        "The key lacks the scope the endpoint needs (inference calls need the inference scope).",
        "Use a key made for inference, or create one on the API keys page.",
    ),
    ErrorKind(
        "rate_limit_exceeded",
        429,
        "rate_limit_error",
        "rate_limit",
        "This API key is sending requests too quickly.",
        "Wait for the time in the Retry-After header, then retry.",
        "This key's rate limit was reached",
        "This key sent requests faster than its own rate limit allows (a number of requests per minute). Your "
        "organization's allowance was not the cause.",
        "Wait the seconds the Retry-After header gives, then retry. Spreading requests out avoids this.",
    ),
    ErrorKind(
        "too_many_invalid_keys",
        429,
        "rate_limit_error",
        "rate_limit",
        "Too many requests with invalid API keys came from your address.",
        "Check the key your client sends, then retry after the time in the Retry-After header.",
        "Too many invalid keys from this address",
        "Requests with invalid keys kept arriving from the same address, so it was refused for a while.",
    ),
    ErrorKind(
        "quota_exhausted",
        429,
        "insufficient_quota",
        "quota",
        "Your organization has used its allowance for this window.",
        "Wait until the allowance comes back (Retry-After), or upgrade your plan.",
        "Your organization's allowance was used up",
        "Every key of your organization draws on the plan's allowances (the short window, such as 5 hours, and the "
        "weekly one); one of them was used up when this request arrived. This key's own rate limit was not the cause.",
        "Wait until the allowance comes back (the Usage page says when), or ask for a bigger plan.",
    ),
    ErrorKind(
        "no_healthy_backend",
        503,
        "api_error",
        "routing",
        "No backend is available for this model right now.",
        "Retry in a few seconds; this request was not counted against your allowance.",
        "No backend could take the request",
        "Every backend serving this model was unavailable at that moment. The problem was on our side.",
        "Retry in a few seconds.",
    ),
    ErrorKind(
        "backend_error",
        502,
        "api_error",
        "backend",
        "The backend failed while running this request.",
        "Retry the request; it was not counted against your allowance.",
        "The backend failed while answering",
        "The model's backend returned an error part-way or instead of an answer. The problem was on our side.",
        "Retry the request.",
    ),
    ErrorKind(
        "backend_timeout",
        504,
        "api_error",
        "backend",
        "The backend did not answer in time.",
        "Retry the request, perhaps with a smaller max_tokens; it was not counted against your allowance.",
        "The backend did not answer in time",
        "The model's backend took longer than the gateway waits. The problem was on our side.",
        "Retry the request; a smaller max_tokens makes answers quicker.",
    ),
    ErrorKind(
        "service_unavailable",
        503,
        "api_error",
        "routing",
        "The gateway cannot take requests right now.",
        "Retry in a few seconds.",
        "The gateway could not take the request",
        "Your limits could not be checked just then, so the request was turned away. The problem was on our side.",
    ),
)

CATALOGUE: dict[str, ErrorKind] = {kind.code: kind for kind in _KINDS}
# The longest code fits the ledger's column (UsageEvent.error_code, max_length 40).
assert max(len(code) for code in CATALOGUE) <= 40
