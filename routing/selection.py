"""Choosing the target of one request: weighted power of two choices over the healthy targets of a route.

Two distinct candidates are drawn with probability proportional to their weight; the one with fewer requests in
flight per unit of weight wins (the first drawn on a tie). With no load this is a plain weighted choice; under load
it steers away from a slow target without starving it. In-flight counts are per worker process: each worker
balances what it sends itself, which is what P2C needs.

Candidates: the route's targets (already enabled and not draining: routing/table.py) that the health board reports
available. A recovering target that this caller won the single trial request for (`Availability.trial`) is chosen
outright. Targets whose last active probe failed are used only when no other candidate is left, so a wrong probe
cannot empty a pool on its own.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from routing.table import TargetEntry

_random = random.Random()  # noqa: S311  (load balancing, not security)


class Availability(frozenset[int]):
    """The target ids the health board lets this request use; `trial` is a recovering target this caller was given
    the one probe request for (it is also in the set)."""

    trial: int | None

    def __new__(cls, ids: Collection[int] = (), trial: int | None = None) -> Availability:
        self = super().__new__(cls, ids if trial is None else {*ids, trial})
        self.trial = trial
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (Availability, (frozenset(self), self.trial))


class InFlight:
    """Requests in flight per target in this process. Thread-safe; the gateway's event loop uses it without
    contention."""

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def get(self, target_id: int) -> int:
        return self._counts.get(target_id, 0)

    def acquire(self, target_id: int) -> None:
        with self._lock:
            self._counts[target_id] = self._counts.get(target_id, 0) + 1

    def release(self, target_id: int) -> None:
        with self._lock:
            count = self._counts.get(target_id, 0) - 1
            if count > 0:
                self._counts[target_id] = count
            else:
                self._counts.pop(target_id, None)

    @contextmanager
    def track(self, target_id: int) -> Iterator[None]:
        self.acquire(target_id)
        try:
            yield
        finally:
            self.release(target_id)


def pick_target(
    targets: Sequence[TargetEntry],
    *,
    available: Collection[int],
    in_flight: InFlight | None = None,
    exclude: Collection[int] = (),
    rng: random.Random | None = None,
) -> TargetEntry | None:
    """The target for the next request, or None when no target may take it (503 no_healthy_backend).

    `exclude` holds targets this request already failed on (a retry goes elsewhere)."""
    candidates = [t for t in targets if t.id in available and t.id not in exclude]
    if not candidates:
        return None
    trial = getattr(available, "trial", None)
    if trial is not None:
        for target in candidates:
            if target.id == trial:
                return target
    probed_ok = [t for t in candidates if t.probe_healthy]
    candidates = probed_ok or candidates
    if len(candidates) == 1:
        return candidates[0]
    rng = rng or _random
    first = _weighted(candidates, rng)
    second = _weighted([t for t in candidates if t is not first], rng)
    if in_flight is None:
        return first
    # Compare in_flight / weight without division: a/wa <= b/wb  <=>  a*wb <= b*wa.
    if in_flight.get(second.id) * first.weight < in_flight.get(first.id) * second.weight:
        return second
    return first


def _weighted(candidates: Sequence[TargetEntry], rng: random.Random) -> TargetEntry:
    total = sum(t.weight for t in candidates)
    point = rng.random() * total
    for target in candidates:
        point -= target.weight
        if point < 0:
            return target
    return candidates[-1]
