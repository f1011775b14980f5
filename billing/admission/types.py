"""The admission engine's vocabulary: the limits a request is checked against, and what the engine answers.

All times are milliseconds since the epoch on the caller's clock (see docs/admission.md, "Time").

The values are treated as immutable but not frozen: a frozen dataclass's __init__ sets each field through
object.__setattr__, three times slower, and the gateway makes seven or eight of them per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

OnUnavailable = Literal["fail_closed", "fail_open"]
ON_UNAVAILABLE_CHOICES: tuple[str, ...] = ("fail_closed", "fail_open")

# `Decision.refused_by` when the fast state could not be reached and the policy is fail_closed.
UNAVAILABLE = "unavailable"


@dataclass(slots=True)
class Limit:
    """At most `limit` units in any rolling window of `window_ms`, counted under `key` within one scope."""

    name: str  # "key_rate" | "short" | "weekly": shown to users, used in error messages
    key: str  # identity of this counter inside the scope, e.g. "key:42:rate", "org:short"
    limit: int
    window_ms: int


@dataclass(slots=True)
class LimitState:
    name: str
    limit: int
    used: int
    remaining: int
    window_ms: int
    next_free_at_ms: int | None  # when the oldest counted unit leaves the window (None if nothing is counted)
    clear_at_ms: int | None  # when every counted unit has left the window (None if nothing is counted)
    degraded: bool = False  # the fast state was unreachable: used/remaining are placeholders, not measurements


@dataclass(slots=True)
class Journal:
    """A stream entry to append in the same atomic step as the booking, only if the request is admitted: the
    gateway's `accepted` usage event, so an admitted request can never exist without its record (and costs one
    round trip, not two). The engine does not read it; it only writes `field`=`value` to `stream`."""

    stream: str
    field: str
    value: str
    maxlen: int  # approximate trim, as the usage stream's other writers use


@dataclass(slots=True)
class Decision:
    admitted: bool
    refused_by: str | None  # Limit.name of the first limit (in the given order) that refused, or UNAVAILABLE
    states: tuple[LimitState, ...]  # after the decision, in the order of the limits given
    retry_after_ms: int  # 0 if admitted; else how long until `cost` fits in every limit
    admitted_at_ms: int  # the time the units were booked under (refund needs it)
    degraded: bool = False  # fast state unreachable: on_unavailable decided the outcome
    journaled: bool = False  # admitted, and the Journal entry given to admit was written with the booking


class AdmissionEngine(Protocol):
    async def admit(
        self,
        *,
        scope: str,
        limits: Sequence[Limit],
        cost: int,
        now_ms: int | None = None,
        on_unavailable: str | None = None,
        journal: Journal | None = None,
    ) -> Decision:
        """Book `cost` units in every limit, or none. An engine that cannot write `journal` atomically (the
        in-process one) leaves it to the caller: `Decision.journaled` says which happened."""
        ...

    async def refund(self, *, scope: str, limits: Sequence[Limit], cost: int, admitted_at_ms: int) -> bool:
        """Give `cost` units back to the buckets they were booked in; False when the fast state could not be
        reached (the units stay counted)."""
        ...

    async def status(
        self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None
    ) -> tuple[LimitState, ...]: ...

    def status_sync(
        self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None
    ) -> tuple[LimitState, ...]: ...

    def raise_sync(
        self, *, scope: str, limit: Limit, events: Iterable[tuple[int, int]], now_ms: int | None = None
    ) -> None:
        """Bring one counter up to what the durable ledger proves, in one atomic step: `events` are
        (timestamp_ms, cost) of admitted, unrefunded requests; each bucket becomes the larger of what it holds and
        what they put in it. Never lowers a bucket, so requests admitted meanwhile (not in the ledger yet) stay
        counted. Events that already left the window are skipped."""
        ...

    def reset_sync(self, *, scope: str) -> None:
        """Drop every counter of a scope (tests, organization deletion)."""
        ...
