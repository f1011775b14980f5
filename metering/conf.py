"""Metering's settings in the units its code uses. The settings, their defaults and why they are what they are live in
portal/settings.py (each read from the environment); these only convert, reading `settings` on every call so tests
may override them.
"""

from __future__ import annotations

from django.conf import settings


def batch_size() -> int:
    return settings.METERING_BATCH_SIZE


def claim_idle_ms() -> int:
    return settings.METERING_CLAIM_IDLE_SECONDS * 1000


def drain_budget_seconds() -> float:
    return settings.METERING_DRAIN_BUDGET_SECONDS


def last_used_resolution_ms() -> int:
    return settings.METERING_LAST_USED_RESOLUTION_SECONDS * 1000


def dead_stream() -> str:
    return settings.METERING_DEAD_STREAM


def max_deliveries() -> int:
    return settings.METERING_MAX_DELIVERIES


def dead_stream_maxlen() -> int:
    return settings.METERING_DEAD_STREAM_MAXLEN


def stale_after_seconds() -> float:
    """The gateway's total timeout plus the margin for the completion event to travel through the stream."""
    return settings.GATEWAY_TOTAL_TIMEOUT + settings.METERING_STALE_MARGIN_SECONDS


def refund_unknown() -> bool:
    return settings.METERING_REFUND_UNKNOWN


def retention_days() -> int:
    return settings.METERING_RETENTION_DAYS


def reconcile_hours() -> int:
    return settings.METERING_RECONCILE_HOURS
