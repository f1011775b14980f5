"""`manage.py drain_usage [--forever]`: drain the usage stream into the ledger without Celery."""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from metering.drain import DrainTotals, usage_drain
from metering.events import GROUP, STREAM


class Command(BaseCommand):
    help = "Drain the usage stream into the ledger: once until it is empty, or --forever (stop with SIGTERM/Ctrl-C)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--forever", action="store_true", help="keep waiting for new events")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--stream", default=STREAM)
        parser.add_argument("--group", default=GROUP)
        parser.add_argument("--consumer", default=None, help="consumer name (default: host-pid)")
        parser.add_argument(
            "--claim-idle-seconds", type=float, default=None, help="take over entries idle this long (default: setting)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = False

        def request_stop(signum: int, frame: FrameType | None) -> None:
            nonlocal stop
            stop = True  # finish the batch in hand, acknowledge it, then leave

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        claim = options["claim_idle_seconds"]
        kwargs: dict[str, Any] = {
            "batch_size": options["batch_size"],
            "stream": options["stream"],
            "group": options["group"],
            "consumer": options["consumer"],
            "claim_idle_ms": None if claim is None else int(claim * 1000),
        }
        totals = DrainTotals()
        started = time.monotonic()
        if not options["forever"]:
            totals.add(usage_drain(max_batches=1_000_000, **kwargs))
        while options["forever"] and not stop:
            batch = usage_drain(max_batches=100, block_ms=1000, **kwargs)
            totals.add(batch)
            if not batch.entries:
                time.sleep(0.1)  # embedded mode cannot block on an empty queue: do not spin
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"drained {totals.entries} entries in {totals.batches} batches ({elapsed:.1f}s): "
            f"{totals.written} ledger rows written, {totals.claimed} taken over, {totals.dead} dead-lettered"
        )
