"""The in-process admission engine for embedded mode (one process, no Redis), with the Redis engine's semantics.

One lock guards every counter, so a decision over several counters is atomic across threads and tasks alike. The
work under the lock is a few dictionary operations and no I/O, which is why the async methods may take it directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from billing.admission.keys import counter_key, scope_prefix
from billing.admission.types import Decision, Journal, Limit, LimitState
from billing.admission.unavailable import resolve_policy
from billing.admission.window import (
    booked_buckets,
    bucket_label,
    check_limits,
    check_request,
    check_scope,
    clock_ms,
    expiry_ms,
    live_buckets,
    state_of,
    wait_ms,
)

# Expired counters are swept at most this often (seconds of the expiry clock), so idle organizations cost nothing.
_SWEEP_INTERVAL_S = 60.0


@dataclass(slots=True)
class _Counter:
    buckets: dict[int, int]
    expires_at: float  # on the engine's expiry clock, like a Redis TTL: independent of the callers' now_ms


class MemoryAdmissionEngine:
    def __init__(self, *, expiry_clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, _Counter] = {}
        self._expiry_clock = expiry_clock
        self._next_sweep = expiry_clock() + _SWEEP_INTERVAL_S

    async def admit(
        self,
        *,
        scope: str,
        limits: Sequence[Limit],
        cost: int,
        now_ms: int | None = None,
        on_unavailable: str | None = None,
        journal: Journal | None = None,  # in-process: nothing to append atomically to; the caller records it
    ) -> Decision:
        now = clock_ms() if now_ms is None else now_ms
        check_request(scope, limits, cost, now)
        resolve_policy(on_unavailable)  # never applied (in-process state is always reachable), but checked alike
        keys = [counter_key(scope, limit) for limit in limits]
        with self._lock:
            self._sweep_if_due()
            lives = [self._prune(key, limit, now) for key, limit in zip(keys, limits, strict=True)]
            refused = next(
                (limit for limit, live in zip(limits, lives, strict=True) if _used(live) + cost > limit.limit),
                None,
            )
            if refused is None:
                lives = [self._book(key, limit, now, cost) for key, limit in zip(keys, limits, strict=True)]
        states = tuple(state_of(limit, live) for limit, live in zip(limits, lives, strict=True))
        if refused is None:
            return Decision(admitted=True, refused_by=None, states=states, retry_after_ms=0, admitted_at_ms=now)
        retry = max(wait_ms(limit, live, now, cost) for limit, live in zip(limits, lives, strict=True))
        return Decision(
            admitted=False, refused_by=refused.name, states=states, retry_after_ms=retry, admitted_at_ms=now
        )

    async def refund(self, *, scope: str, limits: Sequence[Limit], cost: int, admitted_at_ms: int) -> bool:
        check_request(scope, limits, cost, admitted_at_ms)
        with self._lock:
            for limit in limits:
                counter = self._counter(counter_key(scope, limit))
                if counter is None:
                    continue
                label = bucket_label(admitted_at_ms, limit.window_ms)
                have = counter.buckets.get(label, 0)
                if have > cost:
                    counter.buckets[label] = have - cost
                elif have:
                    del counter.buckets[label]
        return True

    async def status(self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None) -> tuple[LimitState, ...]:
        return self.status_sync(scope=scope, limits=limits, now_ms=now_ms)

    def status_sync(self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None) -> tuple[LimitState, ...]:
        now = clock_ms() if now_ms is None else now_ms
        check_scope(scope)
        check_limits(limits)
        with self._lock:
            snapshots = []
            for limit in limits:
                counter = self._counter(counter_key(scope, limit))
                snapshots.append(list(counter.buckets.items()) if counter else [])
        return tuple(
            state_of(limit, live_buckets(buckets, limit.window_ms, now))
            for limit, buckets in zip(limits, snapshots, strict=True)
        )

    def raise_sync(
        self, *, scope: str, limit: Limit, events: Iterable[tuple[int, int]], now_ms: int | None = None
    ) -> None:
        now = clock_ms() if now_ms is None else now_ms
        check_scope(scope)
        check_limits([limit])
        proven = booked_buckets(events, limit.window_ms, now)
        if not proven:
            return
        key = counter_key(scope, limit)
        with self._lock:
            counter = self._counter(key)
            if counter is None:
                counter = self._counters[key] = _Counter({}, 0.0)
            for label, units in proven.items():
                if units > counter.buckets.get(label, 0):
                    counter.buckets[label] = units
            counter.expires_at = self._expires_at(max(counter.buckets), limit, now)

    def reset_sync(self, *, scope: str) -> None:
        check_scope(scope)
        prefix = scope_prefix(scope)
        with self._lock:
            for key in [key for key in self._counters if key.startswith(prefix)]:
                del self._counters[key]

    # The helpers below run under self._lock.

    def _counter(self, key: str) -> _Counter | None:
        counter = self._counters.get(key)
        if counter is not None and counter.expires_at <= self._expiry_clock():
            del self._counters[key]
            return None
        return counter

    def _prune(self, key: str, limit: Limit, now: int) -> list[tuple[int, int]]:
        counter = self._counter(key)
        if counter is None:
            return []
        live = live_buckets(counter.buckets.items(), limit.window_ms, now)
        if len(live) != len(counter.buckets):
            counter.buckets = dict(live)
        return live

    def _book(self, key: str, limit: Limit, now: int, cost: int) -> list[tuple[int, int]]:
        counter = self._counter(key)
        if counter is None:
            counter = self._counters[key] = _Counter({}, 0.0)
        label = bucket_label(now, limit.window_ms)
        counter.buckets[label] = counter.buckets.get(label, 0) + cost
        counter.expires_at = self._expires_at(max(counter.buckets), limit, now)
        return live_buckets(counter.buckets.items(), limit.window_ms, now)

    def _expires_at(self, newest_label: int, limit: Limit, now: int) -> float:
        return self._expiry_clock() + expiry_ms(newest_label, limit.window_ms, now) / 1000

    def _sweep_if_due(self) -> None:
        clock = self._expiry_clock()
        if clock < self._next_sweep:
            return
        self._next_sweep = clock + _SWEEP_INTERVAL_S
        for key in [key for key, counter in self._counters.items() if counter.expires_at <= clock]:
            del self._counters[key]

    def counter_count(self) -> int:
        """How many counters are held (what an idle organization should not add to)."""
        with self._lock:
            return len(self._counters)


def _used(live: Sequence[tuple[int, int]]) -> int:
    return sum(units for _, units in live)
