"""Usage ingestion benchmark: publish synthetic lifecycle events to a Redis stream, drain them with one worker.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/helper_mt REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/ingest.py [--requests 20000] [--batch-size 1000] [--refused 0.1]

Loopback Redis only, and a migrated database. Each admitted request publishes three events (accepted, forwarded,
completed), each refused one a single `refused` event; the order mimics the gateway: a request's `accepted` is
written at once, its `forwarded` and `completed` some requests later (64 in flight). The drain runs in this process
with the production code path (metering.drain.usage_drain: XREADGROUP, one transaction per batch, XACK), so the
numbers are what one Celery worker process achieves. Everything the run writes (its stream, its organization, its
keys, rows and roll-ups) is deleted at the end. Results are in docs/metering.md.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_REQUESTS = 1_000_000
IN_FLIGHT = 64
DRAIN_BUDGET_S = 900.0


def setup_django() -> None:
    redis_url = os.environ.get("REDIS_URL", "")
    host = urlsplit(redis_url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"set REDIS_URL to a loopback Redis (got {redis_url!r})")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: METERING_BATCH_SIZE (2500)")
    parser.add_argument("--refused", type=float, default=0.1, help="share of requests refused before admission")
    parser.add_argument("--keys", type=int, default=20)
    args = parser.parse_args()
    if not 1 <= args.requests <= MAX_REQUESTS:
        raise SystemExit(f"--requests must be between 1 and {MAX_REQUESTS}")
    setup_django()

    from django.db import connection

    from accounts.models import Organization
    from apikeys.models import ApiKey
    from metering import conf
    from metering.drain import usage_drain
    from metering.models import Granularity, UsageEvent, UsageRollup
    from portal.redis import sync_redis

    client = sync_redis()
    assert client is not None
    tag = uuid.uuid4().hex[:10]
    stream, dead = f"bench:usage:{tag}", f"bench:dead:{tag}"
    organization = Organization.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}")
    keys = [
        ApiKey.objects.create(
            organization=organization, name=f"bench {n}", digest=secrets.token_hex(32), prefix="bench", last4="0000"
        ).pk
        for n in range(args.keys)
    ]
    try:
        events = synthetic_events(organization.pk, keys, args.requests, args.refused)
        started = time.perf_counter()
        with client.pipeline(transaction=False) as pipe:
            for index, fields in enumerate(events):
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
                if index % 1000 == 999:
                    pipe.execute()
            pipe.execute()
        published = time.perf_counter() - started

        started = time.perf_counter()
        totals = usage_drain(
            max_batches=1_000_000,
            deadline=time.monotonic() + DRAIN_BUDGET_S,
            batch_size=args.batch_size,
            stream=stream,
            dead_stream=dead,
        )
        drained = time.perf_counter() - started

        rows = UsageEvent.objects.filter(organization=organization).count()
        counted = sum(
            UsageRollup.objects.filter(organization=organization, granularity=Granularity.DAY).values_list(
                "requests", flat=True
            )
        )
        print(f"database {connection.vendor}, batch {args.batch_size or conf.batch_size()}, {args.keys} keys")
        print(f"published {len(events):,} events in {published:.2f}s ({len(events) / published:,.0f} events/s)")
        print(
            f"drained   {totals.entries:,} events ({totals.batches} batches) in {drained:.2f}s: "
            f"{totals.entries / drained:,.0f} events/s, {rows / drained:,.0f} requests/s"
        )
        print(f"ledger rows {rows:,} (expected {args.requests:,}), roll-up requests {counted:,}, dead {totals.dead}")
        if rows != args.requests or counted != args.requests or totals.entries != len(events):
            raise SystemExit("MISMATCH: the ledger does not hold exactly the published requests")
    finally:
        client.delete(stream, dead)
        organization.delete()  # rows, roll-ups and keys go with it


def synthetic_events(organization_id: int, keys: list[int], count: int, refused_share: float) -> list[dict[str, str]]:
    """Stream entries in the order a gateway under load writes them."""
    from metering.events import LifecycleEvent
    from portal.request_ids import new_request_id

    rng = random.Random(8)
    now = time.time_ns() // 1_000_000 - count  # one request per millisecond, ending now
    out: list[dict[str, str]] = []
    later: list[list[LifecycleEvent]] = []
    for index in range(count):
        at = now + index
        key_id = rng.choice(keys)
        request_id = new_request_id(at)
        common = {"request_id": request_id, "organization_id": organization_id, "key_id": key_id, "plan": "free"}
        if rng.random() < refused_share:
            refused = LifecycleEvent(stage="refused", at_ms=at, outcome="rate_limited", status_code=429, **common)
            out.append(refused.to_fields())
            continue
        model = rng.choice(["gpt-oss-20b", "gemma-3", "qwen-3"])
        accepted = LifecycleEvent(
            stage="accepted",
            at_ms=at,
            model=model,
            served_model=model,
            family="oss",
            cost_units=1,
            allowance_class="standard",
            admitted_at_ms=at,
            **common,
        )
        out.append(accepted.to_fields())
        later.append(
            [
                LifecycleEvent(stage="forwarded", at_ms=at + 2, model=model, target_id=1, **common),
                LifecycleEvent(
                    stage="completed",
                    at_ms=at + 40,
                    model=model,
                    served_model=model,
                    family="oss",
                    cost_units=1,
                    admitted_at_ms=at,
                    outcome="ok",
                    status_code=200,
                    target_id=1,
                    latency_ms=40,
                    prompt_tokens=rng.randrange(10, 500),
                    completion_tokens=rng.randrange(10, 800),
                    **common,
                ),
            ]
        )
        if len(later) > IN_FLIGHT:
            out += [event.to_fields() for event in later.pop(0)]
    for pending in later:
        out += [event.to_fields() for event in pending]
    return out


if __name__ == "__main__":
    main()
