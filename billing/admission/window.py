"""The rolling-window arithmetic both engines share: buckets, what is counted at a given time, when units free up.

A counter is a set of buckets `label -> units`. A bucket's label is the LATEST booking time it can hold, so a unit is
counted until `label + window_ms`: it may leave the window up to one bucket width late, never early. The Lua script
(`counters.lua`) repeats these rules inside Redis; the shared contract tests hold the two to the same answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence

from billing.admission.types import Limit, LimitState

# Buckets per window. 120 keeps a counter inside Redis's compact hash encoding (listpack, <= 128 fields) and bounds
# the lateness of a freed unit to window/120 (0.5 s of a minute, 2.5 min of 5 h, 84 min of a week).
BUCKETS_PER_WINDOW = 120

# Counters outlive their last unit by this much, so a worker whose clock runs slightly behind still finds them.
EXPIRY_SLACK_MS = 5_000

_SCOPE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

Bucket = tuple[int, int]  # (label, units)


def clock_ms() -> int:
    return time.time_ns() // 1_000_000


def bucket_width(window_ms: int) -> int:
    return max(1, window_ms // BUCKETS_PER_WINDOW)


def bucket_label(at_ms: int, window_ms: int) -> int:
    """The bucket a unit booked at `at_ms` goes to (and a refund of it comes back to)."""
    width = bucket_width(window_ms)
    return at_ms - at_ms % width + width - 1


def live_buckets(buckets: Iterable[Bucket], window_ms: int, now_ms: int) -> list[Bucket]:
    """The buckets still counted at `now_ms`, oldest first."""
    return sorted((label, units) for label, units in buckets if units > 0 and label + window_ms > now_ms)


def state_of(limit: Limit, live: Sequence[Bucket]) -> LimitState:
    used = sum(units for _, units in live)
    return LimitState(
        name=limit.name,
        limit=limit.limit,
        used=used,
        remaining=max(0, limit.limit - used),
        window_ms=limit.window_ms,
        next_free_at_ms=live[0][0] + limit.window_ms if live else None,
        clear_at_ms=live[-1][0] + limit.window_ms if live else None,
    )


def wait_ms(limit: Limit, live: Sequence[Bucket], now_ms: int, cost: int) -> int:
    """How long until `cost` more units fit under `limit`, if nothing else is booked meanwhile.

    A cost above the limit never fits; the answer is then one window (see docs/admission.md, "Weights").
    """
    left = sum(units for _, units in live)
    if left + cost <= limit.limit:
        return 0
    if cost > limit.limit:
        return limit.window_ms
    for label, units in live:
        left -= units
        if left + cost <= limit.limit:
            return label + limit.window_ms - now_ms
    raise AssertionError("unreachable: an empty window fits any cost up to the limit")


def booked_buckets(events: Iterable[tuple[int, int]], window_ms: int, now_ms: int) -> dict[int, int]:
    """Bookings (timestamp_ms, cost) gathered into the buckets a counter would hold them in at `now_ms`; those that
    already left the window are skipped."""
    buckets: dict[int, int] = {}
    for at_ms, cost in events:
        label = bucket_label(at_ms, window_ms)
        if cost > 0 and label + window_ms > now_ms:
            buckets[label] = buckets.get(label, 0) + cost
    return buckets


def expiry_ms(newest_label: int, window_ms: int, now_ms: int) -> int:
    """A counter's time to live after a booking: until its newest bucket leaves the window, plus slack."""
    return newest_label + window_ms - now_ms + EXPIRY_SLACK_MS


def check_scope(scope: str) -> None:
    # The scope goes into a Redis hash tag and a SCAN pattern, so braces and glob characters are refused.
    if not _SCOPE.fullmatch(scope):
        raise ValueError(f"admission scope must match {_SCOPE.pattern}, got {scope!r}")


def check_limits(limits: Sequence[Limit]) -> None:
    if not limits:
        raise ValueError("admission needs at least one limit")
    if len({limit.key for limit in limits}) != len(limits):
        raise ValueError("admission limits must have distinct keys")
    for limit in limits:
        if limit.limit < 0 or limit.window_ms < 1:
            raise ValueError(f"limit {limit.name!r} needs limit >= 0 and window_ms >= 1")


def check_request(scope: str, limits: Sequence[Limit], cost: int, now_ms: int) -> None:
    check_scope(scope)
    check_limits(limits)
    if cost < 1:
        raise ValueError("admission cost must be at least 1")
    if now_ms < 0:
        raise ValueError("now_ms must not be negative")
