"""Prometheus metrics of the gateway, summed over every worker of the deployment.

Each worker counts in process memory (a few dict increments per request) and publishes its totals to one Redis hash
every few seconds; `/metrics` on any worker reads the hash and adds them up, so a scrape through the load balancer
sees the whole deployment, not whichever worker answered. A worker that stopped publishing drops out after a minute
(its counts with it: Prometheus treats the decrease as a counter reset). Embedded mode serves this process's own.

Served only when `GATEWAY_METRICS_TOKEN` is set, to `Authorization: Bearer <token>`; anything else gets 404.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import socket
import time
from collections import Counter
from typing import Any

import orjson

from metering.events import GROUP, STREAM
from portal.outcomes import Outcome
from portal.redis import async_redis

log = logging.getLogger(__name__)

HASH = "metrics:gateway"
PUBLISH_INTERVAL_SECONDS = 5.0
STALE_SECONDS = 60.0
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000)

_REQUESTS = "portal_gateway_requests_total"
_LATENCY = "portal_gateway_request_duration_seconds"


class GatewayMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()  # (endpoint, outcome, status)
        self.admission: Counter[str] = Counter()  # admitted / degraded / refused_by name / unavailable
        self.upstream_errors: Counter[str] = Counter()  # routing_error / backend_error / backend_timeout
        self.auth_failures: Counter[str] = Counter()  # error code
        self.latency = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None

    # -- counting (request path) ------------------------------------------------------------------------------

    def answered(self, endpoint: str, outcome: Outcome, status: int, latency_ms: int) -> None:
        # Counted by the outcome's plain string: the snapshot goes through orjson, which takes only exact str keys
        # (str() of a StrEnum is str's own, in C; `.value` is two Python calls).
        name = str(outcome)
        self.requests[(endpoint, name, status)] += 1
        self.latency[bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        self.latency_sum_ms += latency_ms
        if outcome.upstream_failure:
            self.upstream_errors[name] += 1

    # -- sharing between workers ------------------------------------------------------------------------------

    def snapshot(self, *, waiting_events: int = 0, dropped_events: int = 0) -> dict[str, Any]:
        return {
            "at": time.time(),
            "requests": [[*key, count] for key, count in self.requests.items()],
            "admission": dict(self.admission),
            "upstream_errors": dict(self.upstream_errors),
            "auth_failures": dict(self.auth_failures),
            "latency": list(self.latency),
            "latency_sum_ms": self.latency_sum_ms,
            "waiting_events": waiting_events,
            "dropped_events": dropped_events,
        }

    def start(self, snapshot: Any) -> None:
        if async_redis() is not None:
            self._task = asyncio.create_task(self._publish_forever(snapshot), name="gateway-metrics")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _publish_forever(self, snapshot: Any) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_SECONDS)
            client = async_redis()
            if client is None:
                return
            try:
                await client.hset(HASH, self.worker, orjson.dumps(snapshot()))
            except Exception:
                log.warning("could not publish gateway metrics", exc_info=True)

    async def render(self, snapshot: Any) -> bytes:
        """The deployment's metrics in Prometheus' text format (this worker's own counts are always current)."""
        mine = snapshot()
        snapshots = [mine]
        backlog: tuple[int, int] | None = None
        client = async_redis()
        if client is not None:
            try:
                stored = await client.hgetall(HASH)
                stale = []
                for worker, raw in stored.items():
                    name = worker.decode() if isinstance(worker, bytes) else worker
                    if name == self.worker:
                        continue
                    data = orjson.loads(raw)
                    if time.time() - float(data.get("at", 0)) > STALE_SECONDS:
                        stale.append(worker)
                    else:
                        snapshots.append(data)
                if stale:
                    await client.hdel(HASH, *stale)
                backlog = await _stream_backlog(client)
            except Exception:
                log.warning("could not read other workers' metrics; showing this worker's", exc_info=True)
        return _render(snapshots, backlog)


async def _stream_backlog(client: Any) -> tuple[int, int]:
    """(entries metering has not read yet, entries read but not yet committed to the ledger)."""
    try:
        groups = await client.xinfo_groups(STREAM)
    except Exception:  # no stream yet: nothing was written, nothing waits
        return 0, 0
    for group in groups:
        name = group.get("name", b"")
        if (name.decode() if isinstance(name, bytes) else name) == GROUP:
            return int(group.get("lag") or 0), int(group.get("pending") or 0)
    return int(await client.xlen(STREAM)), 0  # no consumer group yet: every entry is unread


def _labels(**values: object) -> str:
    inner = ",".join(
        f'{name}="{str(value).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for name, value in values.items()
    )
    return "{" + inner + "}"


def _render(snapshots: list[dict[str, Any]], backlog: tuple[int, int] | None) -> bytes:
    requests: Counter[tuple[str, str, int]] = Counter()
    admission: Counter[str] = Counter()
    upstream: Counter[str] = Counter()
    auth: Counter[str] = Counter()
    latency = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    latency_sum_ms = waiting = dropped = 0
    for data in snapshots:
        for endpoint, outcome, status, count in data["requests"]:
            requests[(endpoint, outcome, int(status))] += count
        admission.update(data["admission"])
        upstream.update(data["upstream_errors"])
        auth.update(data["auth_failures"])
        latency = [a + b for a, b in zip(latency, data["latency"], strict=True)]
        latency_sum_ms += data["latency_sum_ms"]
        waiting += data["waiting_events"]
        dropped += data["dropped_events"]

    lines = [
        f"# HELP {_REQUESTS} Requests the gateway answered, by endpoint, outcome and HTTP status.",
        f"# TYPE {_REQUESTS} counter",
    ]
    for (endpoint, outcome, status), count in sorted(requests.items()):
        lines.append(f"{_REQUESTS}{_labels(endpoint=endpoint, outcome=outcome, status=status)} {count}")
    lines += [
        f"# HELP {_LATENCY} Time from a request's arrival to its last byte, completions only.",
        f"# TYPE {_LATENCY} histogram",
    ]
    running = 0
    for bound, count in zip(LATENCY_BUCKETS_MS, latency, strict=False):
        running += count
        lines.append(f'{_LATENCY}_bucket{{le="{bound / 1000:g}"}} {running}')
    total = sum(latency)
    lines += [
        f'{_LATENCY}_bucket{{le="+Inf"}} {total}',
        f"{_LATENCY}_sum {latency_sum_ms / 1000:.3f}",
        f"{_LATENCY}_count {total}",
    ]
    for name, help_text, counter, label in (
        ("portal_gateway_admission_decisions_total", "Admission answers, by decision.", admission, "decision"),
        ("portal_gateway_upstream_errors_total", "Requests that failed upstream, by outcome.", upstream, "outcome"),
        ("portal_gateway_auth_failures_total", "Requests refused before a key was known, by code.", auth, "code"),
    ):
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        lines += [f"{name}{_labels(**{label: key})} {count}" for key, count in sorted(counter.items())]
    lines += [
        "# HELP portal_gateway_workers Gateway workers whose metrics are included.",
        "# TYPE portal_gateway_workers gauge",
        f"portal_gateway_workers {len(snapshots)}",
        "# HELP portal_gateway_usage_events_waiting Usage events held in workers until the stream takes them.",
        "# TYPE portal_gateway_usage_events_waiting gauge",
        f"portal_gateway_usage_events_waiting {waiting}",
        "# HELP portal_gateway_usage_events_dropped_total Usage events dropped because a worker's buffer was full.",
        "# TYPE portal_gateway_usage_events_dropped_total counter",
        f"portal_gateway_usage_events_dropped_total {dropped}",
    ]
    if backlog is not None:
        lines += [
            "# HELP portal_usage_stream_unread Usage stream entries metering has not read yet.",
            "# TYPE portal_usage_stream_unread gauge",
            f"portal_usage_stream_unread {backlog[0]}",
            "# HELP portal_usage_stream_pending Entries read by metering but not yet committed to the ledger.",
            "# TYPE portal_usage_stream_pending gauge",
            f"portal_usage_stream_pending {backlog[1]}",
        ]
    return ("\n".join(lines) + "\n").encode()
