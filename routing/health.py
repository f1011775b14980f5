"""Passive health: targets that keep failing are ejected for a while, then earn trust back with one trial request.

A target that fails `eject_after` requests in a row (connect errors, 5xx, timeouts: the gateway decides what a
failure is, see `counts_as_failure`) is ejected for `eject_seconds`. When the cooldown is over, exactly one caller of
`available()` is handed the target as its trial (`Availability.trial`); until that request reports, nobody else gets
it. A success makes the target trusted again; a failure ejects it for another cooldown. If the trial never reports
(the worker died), the trial is handed out again after `trial_lease_seconds`.

The state is shared by every gateway worker through one Redis hash (one hash slot, so it runs on Redis Cluster);
each call is at most one round trip, and `record_success` costs none when the target has no failures on record, so
a healthy fleet pays one round trip per request (the availability read). Embedded mode uses `MemoryHealthBoard`, with
the same behaviour in one process. If Redis cannot be reached the board fails open (every target available) and
logs: the gateway then finds out from the upstream itself.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from redis.exceptions import NoScriptError, RedisError

from portal.redis import hot_redis, redis_url, sync_redis
from routing.selection import Availability

log = logging.getLogger(__name__)
Clock = Callable[[], float]
DEFAULT_PREFIX = "portal:"


def counts_as_failure(status: int | None) -> bool:
    """An upstream outcome that counts against a target: no answer (None: connect error, timeout) or a 5xx."""
    return status is None or status >= 500


@dataclass(frozen=True)
class PassiveHealth:
    failures: int = 0  # consecutive failures on record
    ejected_until: float | None = None  # epoch seconds; in the past = waiting for (or running) its trial


class HealthBoard(Protocol):
    async def available(self, target_ids: Sequence[int]) -> Availability: ...

    async def record_success(self, target_id: int) -> None: ...

    async def record_failure(self, target_id: int) -> bool:
        """True when this failure ejected the target."""
        ...

    def describe_sync(self, target_ids: Sequence[int]) -> dict[int, PassiveHealth]: ...

    def forget_sync(self, target_ids: Iterable[int]) -> None: ...


@dataclass(frozen=True)
class BoardSettings:
    eject_after: int
    eject_seconds: float
    trial_lease_seconds: float

    @classmethod
    def from_settings(cls) -> BoardSettings:
        eject_seconds = float(settings.ROUTING_EJECT_SECONDS)
        # A trial may take as long as an upstream's first byte; the lease must not run out while it is underway.
        first_byte = float(settings.GATEWAY_CONNECT_TIMEOUT) + float(settings.GATEWAY_FIRST_BYTE_TIMEOUT)
        return cls(int(settings.ROUTING_EJECT_AFTER_FAILURES), eject_seconds, max(eject_seconds, first_byte))


@dataclass
class _State:
    failures: int = 0
    ejected_until: float | None = None
    trial_until: float = 0.0


class MemoryHealthBoard:
    """The in-process board (embedded mode, and the reference the Redis board is tested against)."""

    def __init__(self, config: BoardSettings | None = None, *, clock: Clock = time.time) -> None:
        self.config = config or BoardSettings.from_settings()
        self.clock = clock
        self._states: dict[int, _State] = {}
        self._lock = threading.Lock()

    async def available(self, target_ids: Sequence[int]) -> Availability:
        now = self.clock()
        usable, trial = [], None
        with self._lock:
            for target_id in target_ids:
                state = self._states.get(target_id)
                if state is None or state.ejected_until is None:
                    usable.append(target_id)
                elif trial is None and now >= state.ejected_until and now >= state.trial_until:
                    state.trial_until = now + self.config.trial_lease_seconds
                    trial = target_id
        return Availability(usable, trial)

    async def record_success(self, target_id: int) -> None:
        with self._lock:
            state = self._states.get(target_id)
            if state is not None and (state.ejected_until is None or self.clock() >= state.ejected_until):
                del self._states[target_id]

    async def record_failure(self, target_id: int) -> bool:
        now = self.clock()
        with self._lock:
            state = self._states.setdefault(target_id, _State())
            if state.ejected_until is not None:
                if now < state.ejected_until:
                    return False
                state.ejected_until, state.trial_until = now + self.config.eject_seconds, 0.0
                return True
            state.failures += 1
            if state.failures >= self.config.eject_after:
                state.failures, state.ejected_until = 0, now + self.config.eject_seconds
                return True
            return False

    def describe_sync(self, target_ids: Sequence[int]) -> dict[int, PassiveHealth]:
        with self._lock:
            return {
                target_id: PassiveHealth(state.failures, state.ejected_until)
                for target_id in target_ids
                if (state := self._states.get(target_id)) is not None
            }

    def forget_sync(self, target_ids: Iterable[int]) -> None:
        with self._lock:
            for target_id in target_ids:
                self._states.pop(target_id, None)


# Fields of the hash, per target: "<id>:f" consecutive failures, "<id>:u" ejected until, "<id>:t" trial lease end.
_AVAILABLE = """
local now, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
local usable, dirty, trial = {}, {}, ''
for i = 3, #ARGV do
  local id = ARGV[i]
  local state = redis.call('HMGET', KEYS[1], id .. ':f', id .. ':u', id .. ':t')
  local ejected_until = tonumber(state[2])
  if state[1] or state[2] then table.insert(dirty, id) end
  if not ejected_until then
    table.insert(usable, id)
  elseif trial == '' and now >= ejected_until and now >= (tonumber(state[3]) or 0) then
    redis.call('HSET', KEYS[1], id .. ':t', tostring(now + lease))
    trial = id
  end
end
return {usable, dirty, trial}
"""
_FAILURE = """
local id, now, cooldown = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[4])
local ejected_until = tonumber(redis.call('HGET', KEYS[1], id .. ':u'))
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ejected_until then
  if now < ejected_until then return 0 end
  redis.call('HSET', KEYS[1], id .. ':u', tostring(now + cooldown))
  redis.call('HDEL', KEYS[1], id .. ':t')
  return 1
end
if redis.call('HINCRBY', KEYS[1], id .. ':f', 1) >= tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], id .. ':u', tostring(now + cooldown))
  redis.call('HDEL', KEYS[1], id .. ':f', id .. ':t')
  return 1
end
return 0
"""
_SUCCESS = """
local ejected_until = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':u'))
if ejected_until and tonumber(ARGV[2]) < ejected_until then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1] .. ':f', ARGV[1] .. ':u', ARGV[1] .. ':t')
"""


class _Script:
    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class RedisHealthBoard:
    """The shared board: one Redis hash holds every target's passive health."""

    scripts = {"available": _Script(_AVAILABLE), "failure": _Script(_FAILURE), "success": _Script(_SUCCESS)}

    def __init__(
        self, config: BoardSettings | None = None, *, clock: Clock = time.time, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.config = config or BoardSettings.from_settings()
        self.clock = clock
        self.key = f"{prefix}{{routing-health}}"
        self.ttl = int(max(3600.0, self.config.eject_seconds * 10))
        self._dirty: set[int] = set()  # targets with state in Redis at our last look: successes must be reported

    async def available(self, target_ids: Sequence[int]) -> Availability:
        if not target_ids:
            return Availability()
        args = [repr(self.clock()), repr(self.config.trial_lease_seconds), *map(str, target_ids)]
        try:
            usable, dirty, trial = await self._run("available", args)
        except RedisError:
            log.warning("health board unreachable; treating every target as available", exc_info=True)
            return Availability(target_ids)
        dirty_ids = {int(value) for value in dirty}
        self._dirty.difference_update(target_ids)
        self._dirty.update(dirty_ids)
        return Availability([int(value) for value in usable], int(trial) if trial else None)

    async def record_success(self, target_id: int) -> None:
        if target_id not in self._dirty:
            return
        try:
            await self._run("success", [str(target_id), repr(self.clock())])
        except RedisError:
            log.warning("could not record a success of target %s", target_id, exc_info=True)
            return
        self._dirty.discard(target_id)

    async def record_failure(self, target_id: int) -> bool:
        self._dirty.add(target_id)
        config = self.config
        args = [str(target_id), repr(self.clock()), str(config.eject_after), repr(config.eject_seconds), str(self.ttl)]
        try:
            return bool(await self._run("failure", args))
        except RedisError:
            log.warning("could not record a failure of target %s", target_id, exc_info=True)
            return False

    def describe_sync(self, target_ids: Sequence[int]) -> dict[int, PassiveHealth]:
        client = sync_redis()
        if client is None or not target_ids:
            return {}
        fields = [f"{target_id}:{suffix}" for target_id in target_ids for suffix in ("f", "u")]
        try:
            values = client.hmget(self.key, fields)
        except RedisError:
            log.warning("health board unreachable", exc_info=True)
            return {}
        states = {}
        for index, target_id in enumerate(target_ids):
            failures, until = values[2 * index], values[2 * index + 1]
            if failures is not None or until is not None:
                states[target_id] = PassiveHealth(int(failures or 0), float(until) if until is not None else None)
        return states

    def forget_sync(self, target_ids: Iterable[int]) -> None:
        client = sync_redis()
        fields = [f"{target_id}:{suffix}" for target_id in target_ids for suffix in ("f", "u", "t")]
        if client is not None and fields:
            client.hdel(self.key, *fields)

    async def _run(self, name: str, args: list[str]) -> Any:
        client = hot_redis()
        if client is None:
            raise RedisError("REDIS_URL is not set")
        script = self.scripts[name]
        try:
            return await client.evalsha(script.sha, 1, self.key, *args)
        except NoScriptError:
            return await client.eval(script.source, 1, self.key, *args)


_lock = threading.Lock()
_boards: dict[str, HealthBoard] = {}


def health_board() -> HealthBoard:
    """This process's board: shared through Redis when REDIS_URL is set, in-process otherwise."""
    mode = "redis" if redis_url() is not None else "memory"
    with _lock:
        board = _boards.get(mode)
        if board is None:
            board = RedisHealthBoard() if mode == "redis" else MemoryHealthBoard()
            _boards[mode] = board
        return board
