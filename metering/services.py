"""Metering's writing services in one place, for callers outside the app (gateway, tasks, commands, tests).

Each lives in the module of its job; see those for the contracts.
"""

from __future__ import annotations

from metering.counters import allowance_check, allowance_rebuild, allowance_rebuild_all
from metering.drain import DrainTotals, usage_drain, usage_drain_local, usage_stream_consumers_prune
from metering.ingest import usage_events_ingest, usage_events_write
from metering.reconcile import usage_reconcile, usage_requests_close_stale
from metering.retention import usage_events_prune
from metering.rollups import usage_rollups_repair

__all__ = [
    "DrainTotals",
    "allowance_check",
    "allowance_rebuild",
    "allowance_rebuild_all",
    "usage_drain",
    "usage_drain_local",
    "usage_events_ingest",
    "usage_events_prune",
    "usage_events_write",
    "usage_reconcile",
    "usage_requests_close_stale",
    "usage_rollups_repair",
    "usage_stream_consumers_prune",
]
