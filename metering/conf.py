"""Metering's settings, read in this one place so they can move to portal/settings.py without touching callers.

Each function reads `settings.NAME` with its default on every call (a dictionary lookup), so tests may override them.
"""

from __future__ import annotations

from django.conf import settings


def batch_size() -> int:
    """Stream entries read per batch (one database transaction each). Measured in docs/metering.md: below ~2,000 the
    per-batch costs dominate, and more of a request's events straddle two batches."""
    return int(getattr(settings, "METERING_BATCH_SIZE", 2500))


def claim_idle_ms() -> int:
    """Entries another consumer has held unacknowledged this long are taken over (that consumer is presumed dead).
    Well above a batch's worst-case processing time, so a slow but live consumer is not robbed."""
    return int(getattr(settings, "METERING_CLAIM_IDLE_SECONDS", 60)) * 1000


def drain_budget_seconds() -> float:
    """How long one drain task keeps reading before it returns (beat starts the next one)."""
    return float(getattr(settings, "METERING_DRAIN_BUDGET_SECONDS", 10.0))


def last_used_resolution_ms() -> int:
    """How stale a key's last_used_at may be: a key written this recently by the same worker is not written again."""
    return int(getattr(settings, "METERING_LAST_USED_RESOLUTION_SECONDS", 60)) * 1000


def dead_stream() -> str:
    """Where entries that are not valid usage events go, acknowledged, for an operator to inspect."""
    return str(getattr(settings, "METERING_DEAD_STREAM", "usage:dead"))


def max_deliveries() -> int:
    """An entry read this many times without being written (its batch kept failing) is then written alone, and
    dead-lettered if that fails too while the database answers."""
    return max(1, int(getattr(settings, "METERING_MAX_DELIVERIES", 5)))


def dead_stream_maxlen() -> int:
    return int(getattr(settings, "METERING_DEAD_STREAM_MAXLEN", 100_000))


def stale_after_seconds() -> float:
    """An admitted request without a completion this long after admission is closed as `unknown`: the gateway's
    total timeout plus a margin for the completion event to travel through the stream."""
    margin = float(getattr(settings, "METERING_STALE_MARGIN_SECONDS", 120))
    return float(getattr(settings, "GATEWAY_TOTAL_TIMEOUT", 300.0)) + margin


def refund_unknown() -> bool:
    """Whether requests closed as `unknown` give their allowance units back (default: no, see docs/metering.md)."""
    return bool(getattr(settings, "METERING_REFUND_UNKNOWN", False))


def retention_days() -> int:
    """Raw usage events older than this are pruned; roll-ups are kept."""
    return int(getattr(settings, "METERING_RETENTION_DAYS", 90))


def reconcile_hours() -> int:
    """The period the periodic reconciliation reports on."""
    return int(getattr(settings, "METERING_RECONCILE_HOURS", 24))
