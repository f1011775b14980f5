"""Rate-limit headers from an admission answer: the IETF draft's `RateLimit-Policy` / `RateLimit`, OpenAI's
`x-ratelimit-*-requests`, and `Retry-After` on refusals. Every limit is listed in the policy; `RateLimit` and the
`x-ratelimit-*` trio describe the tightest one (the fewest units left), which is what a client should pace itself by.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from billing.admission import LimitState

Header = tuple[bytes, bytes]


def _seconds_until(at_ms: int | None, now_ms: int) -> int:
    if at_ms is None:
        return 0
    return max(0, math.ceil((at_ms - now_ms) / 1000))


def openai_duration(seconds: int) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `2h5m0s`."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def tightest(states: Sequence[LimitState]) -> LimitState | None:
    return min(states, key=lambda state: (state.remaining, -state.window_ms), default=None)


def rate_limit_headers(states: Sequence[LimitState], now_ms: int) -> list[Header]:
    if not states or any(state.degraded for state in states):
        return []
    state = tightest(states)
    assert state is not None
    # When units remain, the next one frees when the oldest counted leaves; "reset" is when this limit is clear.
    reset = _seconds_until(state.clear_at_ms, now_ms)
    return [
        (
            b"ratelimit-policy",
            b", ".join([b'"%s";q=%d;w=%d' % (s.name.encode(), s.limit, s.window_ms // 1000) for s in states]),
        ),
        (b"ratelimit", b'"%s";r=%d;t=%d' % (state.name.encode(), state.remaining, reset)),
        (b"x-ratelimit-limit-requests", b"%d" % state.limit),
        (b"x-ratelimit-remaining-requests", b"%d" % state.remaining),
        (b"x-ratelimit-reset-requests", openai_duration(reset).encode()),
    ]


def retry_after_header(retry_after_ms: int) -> Header:
    return (b"retry-after", str(max(1, math.ceil(retry_after_ms / 1000))).encode())
