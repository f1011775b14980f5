"""How a request ended: the one list of outcomes, with the error code each stands for and whether it is refunded.

The gateway decides a request's outcome; metering stores it (`UsageEvent.outcome`, `metering.events.OUTCOMES`) and
explains it. Both import this module, which imports neither (the same rule as portal/error_catalogue.py beside it).
The values are the strings the usage stream and the ledger hold: a member is a `str` and compares, hashes and
serialises as its value, so events, metric labels and rows are unchanged by using it.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    # value, the error code the client is sent when the gateway has no more precise one ("" when none is sent),
    # and whether an admitted request that ends this way gives its units back.
    OK = "ok", "", False
    # Refused as invalid: before admission nothing was booked; after it (the adapter or the backend refused the
    # body before any answer) the client got nothing, so the units go back.
    CLIENT_ERROR = "client_error", "invalid_request", True
    RATE_LIMITED = "rate_limited", "rate_limit_exceeded", False
    QUOTA_EXHAUSTED = "quota_exhausted", "quota_exhausted", False
    ROUTING_ERROR = "routing_error", "no_healthy_backend", True
    BACKEND_ERROR = "backend_error", "backend_error", True
    BACKEND_TIMEOUT = "backend_timeout", "backend_timeout", True
    # A client that left mid-stream got part of an answer: it is billed.
    CLIENT_CANCELLED = "client_cancelled", "", False
    # Closed by metering when the gateway stopped hearing of it; refunding those is metering's policy
    # (METERING_REFUND_UNKNOWN), not the gateway's.
    UNKNOWN = "unknown", "", False

    error_code: str
    refunded: bool
    upstream_failure: bool

    def __new__(cls, value: str, error_code: str, refunded: bool) -> Outcome:
        member = str.__new__(cls, value)
        member._value_ = value
        member.error_code = error_code
        member.refunded = refunded
        return member


# Failed for routing or backend reasons: what the upstream-errors metric counts. A plain attribute, as error_code and
# refunded: read on every request, where a property would be a Python call.
for _outcome in Outcome:
    _outcome.upstream_failure = _outcome in (Outcome.ROUTING_ERROR, Outcome.BACKEND_ERROR, Outcome.BACKEND_TIMEOUT)
del _outcome
