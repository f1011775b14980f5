"""Lua scripts run by SHA: loaded once per Redis server (SCRIPT LOAD), called with EVALSHA, reloaded on NOSCRIPT
(after a restart, a failover or SCRIPT FLUSH) so the script body crosses the wire only when the server lacks it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import redis
from redis.exceptions import NoScriptError

_HERE = Path(__file__).resolve().parent


class ScriptClient(Protocol):
    """What running a script needs of an async client: portal.netclients.redis_pipe.PipelinedRedis and redis.asyncio
    both fit."""

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any: ...

    async def script_load(self, script: str) -> Any: ...


class LuaScript:
    def __init__(self, filename: str) -> None:
        self.source = (_HERE / filename).read_text(encoding="utf-8")
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    async def run(self, client: ScriptClient, keys: list[str], args: list[int | str]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)

    def run_sync(self, client: redis.Redis, keys: list[str], args: list[int | str]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)
