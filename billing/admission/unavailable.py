"""What admission answers when the fast state (Redis) cannot be reached: the operator's policy, never an exception.

`fail_closed` refuses with `refused_by="unavailable"`, `fail_open` admits; both mark the answer degraded. The
states then carry placeholders (used=0, nothing scheduled) flagged `degraded`, because the real numbers are unknown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis.exceptions
from django.conf import settings

from billing.admission.types import ON_UNAVAILABLE_CHOICES, UNAVAILABLE, Decision, Limit, LimitState
from portal.settings_cache import SettingsCache

log = logging.getLogger("billing.admission")

# Connection refused/reset, timeouts, a Redis still loading its data, a replica that turned read-only in a
# failover: the fast state is unusable, not the request. Anything else (a script bug) is a real error and raises.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    OSError,
    TimeoutError,
)

# Fail-closed refusals ask the client to come back after this long; an outage is not a quota.
UNAVAILABLE_RETRY_MS = 1_000

# At most one warning per interval per process, so an outage does not turn every request into a log line.
_WARN_INTERVAL_S = 10.0
_warn_lock = threading.Lock()
_last_warning = -_WARN_INTERVAL_S
_suppressed = 0


_POLICY = SettingsCache(lambda: str(settings.ADMISSION_ON_UNAVAILABLE))


def resolve_policy(on_unavailable: str | None) -> str:
    policy = _POLICY.get() if on_unavailable is None else on_unavailable
    if policy not in ON_UNAVAILABLE_CHOICES:
        raise ValueError(f"on_unavailable must be one of {ON_UNAVAILABLE_CHOICES}, got {policy!r}")
    return str(policy)


def placeholder_states(limits: Sequence[Limit]) -> tuple[LimitState, ...]:
    return tuple(
        LimitState(
            name=limit.name,
            limit=limit.limit,
            used=0,
            remaining=limit.limit,
            window_ms=limit.window_ms,
            next_free_at_ms=None,
            clear_at_ms=None,
            degraded=True,
        )
        for limit in limits
    )


def degraded_decision(limits: Sequence[Limit], policy: str, now_ms: int) -> Decision:
    admitted = policy == "fail_open"
    return Decision(
        admitted=admitted,
        refused_by=None if admitted else UNAVAILABLE,
        states=placeholder_states(limits),
        retry_after_ms=0 if admitted else UNAVAILABLE_RETRY_MS,
        admitted_at_ms=now_ms,
        degraded=True,
    )


def warn_unavailable(operation: str, error: BaseException, outcome: str) -> None:
    """Log that the fast state is unreachable. Only the error's class and message: never the URL (it may hold a
    password)."""
    global _last_warning, _suppressed
    now = time.monotonic()
    with _warn_lock:
        if now - _last_warning < _WARN_INTERVAL_S:
            _suppressed += 1
            return
        suppressed, _suppressed, _last_warning = _suppressed, 0, now
    log.warning(
        "admission fast state unreachable during %s (%s: %s); %s (%d similar warnings suppressed)",
        operation,
        type(error).__name__,
        error,
        outcome,
        suppressed,
    )
