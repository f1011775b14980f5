"""Active health probes over HTTP: is a target up, how fast does it answer, and if not, why.

cortensor targets: `GET {base}/api/v1/ping`, and `GET {base}/api/v1/status` when the node has no ping route;
openai targets: `GET {base}/models` with the router key. The error text names what went wrong (status code, connect
error, timeout) and never the key: the key is scrubbed from anything that could echo it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

MAX_ERROR = 300


@dataclass(frozen=True)
class ProbeTarget:
    id: int
    protocol: str
    base_url: str
    api_key: str = ""

    def __repr__(self) -> str:
        return f"ProbeTarget(id={self.id}, protocol={self.protocol!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class ProbeResult:
    target_id: int
    healthy: bool
    latency_ms: float | None
    error: str = ""


async def probe_targets_http(targets: Sequence[ProbeTarget], *, timeout: float) -> list[ProbeResult]:
    """Probe every target at once; the whole round takes about one timeout however many targets there are."""
    if not targets:
        return []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        return list(await asyncio.gather(*(probe_one(client, target) for target in targets)))


async def probe_one(client: httpx.AsyncClient, target: ProbeTarget) -> ProbeResult:
    base = target.base_url.rstrip("/")
    headers = {"Authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    paths = ["/api/v1/ping", "/api/v1/status"] if target.protocol == "cortensor" else ["/models"]
    started = time.perf_counter()
    error = ""
    for path in paths:
        started = time.perf_counter()
        try:
            response = await client.get(base + path, headers=headers)
        except httpx.TimeoutException:
            return ProbeResult(target.id, False, None, f"timed out after {client.timeout.read}s on {path}")
        except httpx.HTTPError as exc:
            return ProbeResult(target.id, False, None, _scrub(f"{type(exc).__name__} on {path}: {exc}", target))
        latency = round((time.perf_counter() - started) * 1000, 1)
        if response.is_success:
            return ProbeResult(target.id, True, latency)
        error = f"HTTP {response.status_code} on {path}"
        if response.status_code not in (404, 405):  # only a missing route is worth the fallback
            return ProbeResult(target.id, False, latency, error)
    return ProbeResult(target.id, False, round((time.perf_counter() - started) * 1000, 1), error)


def _scrub(text: str, target: ProbeTarget) -> str:
    if target.api_key:
        text = text.replace(target.api_key, "[key]")
    return text[:MAX_ERROR]
