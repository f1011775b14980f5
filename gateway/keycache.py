"""The gateway's hot cache of API key records: process memory first, then Redis, the database only on a miss.

A steady-state request finds its record in process memory and makes no network call at all. Changes arrive by
invalidation (`gateway.listener`) within a second; the TTLs below are only a safety net for a lost message. Unknown
digests are remembered briefly too, so a client hammering with a bad key does not reach the database every time.

`clear()` is what the listener calls when it may have missed messages (its Redis connection broke). The Redis copy
of a record may then be stale too: a key revoked while Redis was away still has its old record there until the
invalidation outbox deletes it. So every digest this worker held when it cleared is re-checked against the
database on its next use, skipping Redis, and the Redis copy is deleted once Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time

from apikeys.records import CACHE_TTL_SECONDS, KeyRecord, record_cache_key
from apikeys.selectors import apikey_record_by_digest_async
from gateway.db import read_database
from portal.netclients.redis_pipe import PipelinedRedis
from portal.redis import hot_redis

log = logging.getLogger(__name__)

LOCAL_TTL_SECONDS = 60.0
NEGATIVE_TTL_SECONDS = 5.0
_MISSING = b"-"
MAX_LOCAL_ENTRIES = 100_000


class KeyCache:
    def __init__(self) -> None:
        self._local: dict[str, tuple[KeyRecord | None, float]] = {}
        self._loading: dict[str, asyncio.Future[KeyRecord | None]] = {}
        # Digests held when caches were cleared after a gap in invalidations: read from the database, not Redis.
        self._suspect: set[str] = set()
        self.database_reads = 0  # for tests and metrics: how often a miss reached the database

    async def get(self, digest: str) -> KeyRecord | None:
        entry = self._local.get(digest)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        pending = self._loading.get(digest)
        if pending is not None:  # another request is already loading this digest: share its answer
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[digest] = future
        try:
            record = await self._load(digest)
            future.set_result(record)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: the caller below re-raises it
            raise
        finally:
            del self._loading[digest]
        ttl = LOCAL_TTL_SECONDS if record is not None else NEGATIVE_TTL_SECONDS
        if len(self._local) >= MAX_LOCAL_ENTRIES:
            self._local.clear()
        self._local[digest] = (record, time.monotonic() + ttl)
        return record

    async def _load(self, digest: str) -> KeyRecord | None:
        client = hot_redis()
        if digest in self._suspect:
            return await self._recheck(digest, client)
        if client is not None:
            try:
                raw = await client.get(record_cache_key(digest))
                if raw == _MISSING:
                    return None
                if raw is not None:
                    return KeyRecord.from_json(raw)
            except Exception:  # Redis trouble: fall through to the database, the source of truth
                log.warning("key cache: Redis read failed; reading the database")
                client = None
        self.database_reads += 1
        record = await read_database(lambda: apikey_record_by_digest_async(digest=digest))
        if client is not None:
            try:
                if record is None:
                    await client.set(record_cache_key(digest), _MISSING, ex=int(NEGATIVE_TTL_SECONDS))
                else:
                    await client.set(record_cache_key(digest), record.to_json(), ex=CACHE_TTL_SECONDS)
            except Exception:
                log.warning("key cache: Redis write failed")
        return record

    def peek(self, digest: str) -> KeyRecord | None:
        """The record if this process holds a fresh one; never a network call."""
        entry = self._local.get(digest)
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    async def _recheck(self, digest: str, client: PipelinedRedis | None) -> KeyRecord | None:
        """The database's record for a digest whose Redis copy may have missed an invalidation; that copy is
        deleted (not rewritten: a change committed meanwhile must not be overwritten with what was just read), and
        the digest stays suspect until the delete succeeds."""
        self.database_reads += 1
        record = await read_database(lambda: apikey_record_by_digest_async(digest=digest))
        if client is None:
            self._suspect.discard(digest)
            return record
        try:
            await client.execute("DEL", record_cache_key(digest))
        except Exception:
            log.warning("key cache: Redis delete failed; the key stays checked against the database")
        else:
            self._suspect.discard(digest)
        return record

    def forget(self, digest: str) -> None:
        self._local.pop(digest, None)

    def clear(self) -> None:
        """Drop everything after a possible gap in invalidations; what was held is re-checked (module docstring)."""
        self._suspect.update(self._local)
        self._local.clear()

    @property
    def suspect_count(self) -> int:
        return len(self._suspect)
