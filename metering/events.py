"""The lifecycle event: what the gateway reports about a request at each stage of its life.

One request produces several events with the same `request_id`: `refused` (turned away after the key was known,
before admission: never billed, counted for the request log), or `accepted` (admitted, allowance consumed), then
`forwarded` (sent to a backend target) and `completed` (finished, with its outcome). The gateway writes them to the
usage stream; metering drains the stream into one ledger row per request id. Events are flat string maps so they
go into a Redis stream entry as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import orjson

from portal.outcomes import Outcome

STREAM = "usage:events"
GROUP = "metering"

STAGES = ("refused", "accepted", "forwarded", "completed")

# The outcomes are portal/outcomes.py's (the gateway decides them from the same enum), as the plain strings the
# stream and the ledger hold.
OUTCOMES = tuple(outcome.value for outcome in Outcome)


# Treated as immutable, but not frozen: a frozen dataclass's __init__ sets each of these twenty-odd fields through
# object.__setattr__, six times slower than a plain one, and the gateway makes two or three events per request.
@dataclass(slots=True)
class LifecycleEvent:
    stage: str
    request_id: str
    at_ms: int
    organization_id: int
    key_id: int
    user_id: int | None = None  # the key's creator: the person the request is attributed to
    model: str = ""  # the alias the client asked for
    served_model: str = ""  # the alias that served it (differs when the plan degraded the request)
    family: str = ""
    plan: str = ""
    allowance_class: str = ""  # "standard" or "degraded"
    cost_units: int = 0
    admitted_at_ms: int | None = None  # when the allowance was booked (refunds and rebuilds need it)
    outcome: str = ""
    status_code: int | None = None
    # On `refused`, and on `completed` when the request ended in an error: the `error.code` the client was sent
    # (portal/error_catalogue.py), so the log can tell a revoked key from a typo, or a key's rate limit from the
    # organization's allowance. Empty for a success or a client that hung up.
    error_code: str = ""
    target_id: int | None = None
    # On `completed`: when the request reached its target. The gateway drops a `forwarded` event that would be
    # written in the same batch as its `completed` one; this field keeps what it said.
    forwarded_at_ms: int | None = None
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stream: bool = False
    refunded: bool = False
    # On `completed`: the gateway could not give the refunded units back (Redis unreachable at that moment);
    # ingestion does, once, when it first records the refund.
    refund_owed: bool = False

    _INTS: ClassVar[frozenset[str]] = frozenset(
        {
            "at_ms",
            "organization_id",
            "key_id",
            "user_id",
            "cost_units",
            "admitted_at_ms",
            "status_code",
            "target_id",
            "forwarded_at_ms",
            "latency_ms",
            "prompt_tokens",
            "completion_tokens",
        }
    )
    _BOOLS: ClassVar[frozenset[str]] = frozenset({"stream", "refunded", "refund_owed"})

    def to_fields(self) -> dict[str, str]:
        """The stream entry: one field holding the event as compact JSON, absent values left out. One field, not
        one per attribute: encoding a fifteen-field XADD was a measurable share of the gateway's time per request."""
        data = {name: value for name in _WRITTEN if (value := getattr(self, name)) is not None and value != ""}
        if self.refund_owed:  # rare: written only when true, so the usual event carries no extra field
            data["refund_owed"] = True
        return {"e": orjson.dumps(data).decode()}

    @classmethod
    def from_fields(cls, data: dict[str, str] | dict[bytes, bytes]) -> LifecycleEvent:
        """Parse a stream entry; ValueError for an entry that is not a usage event."""
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in data.items()
        }
        if "e" in text:  # the compact form to_fields writes
            try:
                decoded = orjson.loads(text["e"])
            except ValueError:
                raise ValueError("not a usage event: bad JSON") from None
            if not isinstance(decoded, dict):
                raise ValueError("not a usage event")
            flat = {k: v for k, v in text.items() if k != "e"}  # fields written beside it take precedence
            text = {k: ("1" if v is True else "0" if v is False else str(v)) for k, v in decoded.items()}
            text.update(flat)
        values: dict[str, object] = {}
        for name, raw in text.items():
            if name not in _KNOWN:
                continue
            if name in cls._INTS:
                values[name] = int(raw)
            elif name in cls._BOOLS:
                values[name] = raw == "1"
            else:
                values[name] = raw
        try:
            event = cls(**values)  # type: ignore[arg-type]
        except TypeError as error:
            raise ValueError(f"not a usage event: {error}") from None
        if event.stage not in STAGES:
            raise ValueError(f"unknown stage {event.stage!r}")
        if event.outcome and event.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {event.outcome!r}")
        return event


# Computed once: dataclasses.fields() per call showed up in the drain's profile (to_fields is on the gateway's path).
_FIELD_NAMES = tuple(item.name for item in fields(LifecycleEvent))
_WRITTEN = tuple(name for name in _FIELD_NAMES if name != "refund_owed")
_KNOWN = frozenset(_FIELD_NAMES)
