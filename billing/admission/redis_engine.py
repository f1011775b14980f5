"""The admission engine on Redis: one Lua call per decision, shared by every gateway worker of the deployment.

Clients come from portal/redis.py. Admit, status, refund and raise are one call each of `counters.lua` (atomic, one
round trip, a reply of one short string); only `reset`, which runs outside the request path, uses plain commands.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis
from django.core.exceptions import ImproperlyConfigured

from billing.admission.keys import counter_key, scope_prefix
from billing.admission.scripts import LuaScript
from billing.admission.types import Decision, Journal, Limit, LimitState
from billing.admission.unavailable import (
    UNAVAILABLE_ERRORS,
    degraded_decision,
    placeholder_states,
    resolve_policy,
    warn_unavailable,
)
from billing.admission.window import (
    EXPIRY_SLACK_MS,
    booked_buckets,
    bucket_label,
    check_limits,
    check_request,
    check_scope,
    clock_ms,
)
from portal.netclients.redis_pipe import PipelinedRedis
from portal.redis import hot_redis, sync_redis

_SCRIPT = LuaScript("counters.lua")

_RESET_BATCH = 500


class RedisAdmissionEngine:
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
        now = clock_ms() if now_ms is None else now_ms
        check_request(scope, limits, cost, now)
        policy = resolve_policy(on_unavailable)
        args: list[int | str] = ["admit" if journal is None else "admit+journal", now, cost, EXPIRY_SLACK_MS]
        for limit in limits:
            args += [limit.limit, limit.window_ms, str(bucket_label(now, limit.window_ms))]
        keys = _keys(scope, limits)
        if journal is not None:
            # The stream is one more key of the script. On Redis Cluster it would have to share the counters' slot
            # (docs/gateway.md, "Caches and round trips"); a single Redis or a primary with replicas takes it as is.
            keys.append(journal.stream)
            args += [journal.maxlen, journal.field, journal.value]
        try:
            reply = await _SCRIPT.run(_async_client(), keys, args)
        except UNAVAILABLE_ERRORS as error:
            warn_unavailable("admit", error, "admitting" if policy == "fail_open" else "refusing")
            return degraded_decision(limits, policy, now)
        return _decision(limits, _integers(reply), now, journaled=journal is not None)

    async def refund(self, *, scope: str, limits: Sequence[Limit], cost: int, admitted_at_ms: int) -> bool:
        check_request(scope, limits, cost, admitted_at_ms)
        args: list[int | str] = ["refund", cost]
        args += [str(bucket_label(admitted_at_ms, limit.window_ms)) for limit in limits]
        try:
            await _SCRIPT.run(_async_client(), _keys(scope, limits), args)
        except UNAVAILABLE_ERRORS as error:
            # The units stay counted for now; the caller says so in the ledger, and metering gives them back later.
            warn_unavailable("refund", error, "the refund is left to metering")
            return False
        return True

    async def status(self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None) -> tuple[LimitState, ...]:
        now = clock_ms() if now_ms is None else now_ms
        check_scope(scope)
        check_limits(limits)
        try:
            reply = await _SCRIPT.run(_async_client(), _keys(scope, limits), _status_args(limits, now))
        except UNAVAILABLE_ERRORS as error:
            warn_unavailable("status", error, "showing placeholders")
            return placeholder_states(limits)
        return _states(limits, _integers(reply), 0)

    def status_sync(self, *, scope: str, limits: Sequence[Limit], now_ms: int | None = None) -> tuple[LimitState, ...]:
        now = clock_ms() if now_ms is None else now_ms
        check_scope(scope)
        check_limits(limits)
        try:
            reply = _SCRIPT.run_sync(_sync_client(), _keys(scope, limits), _status_args(limits, now))
        except UNAVAILABLE_ERRORS as error:
            warn_unavailable("status", error, "showing placeholders")
            return placeholder_states(limits)
        return _states(limits, _integers(reply), 0)

    def raise_sync(
        self, *, scope: str, limit: Limit, events: Iterable[tuple[int, int]], now_ms: int | None = None
    ) -> None:
        """One call of counters.lua ('raise'). Unlike admit, an unreachable Redis raises here: a correction that did
        not happen must be retried by its caller, not silently skipped."""
        now = clock_ms() if now_ms is None else now_ms
        check_scope(scope)
        check_limits([limit])
        proven = booked_buckets(events, limit.window_ms, now)
        if not proven:
            return
        args: list[int | str] = ["raise", now, limit.window_ms, EXPIRY_SLACK_MS]
        for label, units in sorted(proven.items()):
            args += [str(label), units]
        _SCRIPT.run_sync(_sync_client(), [counter_key(scope, limit)], args)

    def reset_sync(self, *, scope: str) -> None:
        check_scope(scope)
        client = _sync_client()
        batch: list[bytes] = []
        # The scope is checked to hold no glob characters, so the prefix is a literal match.
        for key in client.scan_iter(match=scope_prefix(scope) + "*", count=_RESET_BATCH):
            batch.append(key)
            if len(batch) >= _RESET_BATCH:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)


def _keys(scope: str, limits: Sequence[Limit]) -> list[str]:
    return [counter_key(scope, limit) for limit in limits]


def _async_client() -> PipelinedRedis:
    client = hot_redis()
    if client is None:
        raise ImproperlyConfigured("the Redis admission engine needs REDIS_URL; use get_engine()")
    return client


def _sync_client() -> redis.Redis:
    client = sync_redis()
    if client is None:
        raise ImproperlyConfigured("the Redis admission engine needs REDIS_URL; use get_engine()")
    return client


def _integers(reply: bytes | str) -> list[int]:
    text = reply.decode() if isinstance(reply, bytes) else reply
    return [int(value) for value in text.split(",")]


def _status_args(limits: Sequence[Limit], now: int) -> list[int | str]:
    return ["status", now, *(limit.window_ms for limit in limits)]


def _states(limits: Sequence[Limit], reply: list[int], offset: int) -> tuple[LimitState, ...]:
    """LimitStates from the script's (used, oldest label, newest label) triples, starting at `offset`."""
    states = []
    for index, limit in enumerate(limits):
        used, oldest, newest = reply[offset + 3 * index : offset + 3 * index + 3]
        states.append(
            LimitState(
                name=limit.name,
                limit=limit.limit,
                used=used,
                remaining=max(0, limit.limit - used),
                window_ms=limit.window_ms,
                next_free_at_ms=oldest + limit.window_ms if used else None,
                clear_at_ms=newest + limit.window_ms if used else None,
            )
        )
    return tuple(states)


def _decision(limits: Sequence[Limit], reply: list[int], now: int, *, journaled: bool) -> Decision:
    admitted, refused, retry = reply[0] == 1, reply[1], reply[2]
    return Decision(
        admitted=admitted,
        refused_by=None if admitted else limits[refused - 1].name,
        states=_states(limits, reply, 3),
        retry_after_ms=retry,
        admitted_at_ms=now,
        journaled=admitted and journaled,  # the script appends the entry exactly when it admits
    )
