"""The limits one request is checked against, derived from the organization's plan and the key.

The one place that turns a plan into admission limits, used by the gateway (to admit), by the pages and APIs that
show what is left (to read the same counters), and by metering (to rebuild counters from the ledger). The window
length is part of each counter's name, so a plan change that alters a window starts that counter afresh instead of
reading old buckets with a new width; a change of the number alone applies to the existing counter at once.
"""

from __future__ import annotations

from billing.admission import Limit
from billing.selectors import PlanSnapshot

KEY_RATE = "key_rate"
SHORT = "short"
WEEKLY = "weekly"


def key_rate_limit(*, plan: PlanSnapshot, key_id: int, key_limit: int | None = None) -> Limit:
    """The per-key rate limit: the plan's, or the key's own when it is lower."""
    requests = plan.key_rate_requests if key_limit is None else min(key_limit, plan.key_rate_requests)
    window_ms = plan.key_rate_window_seconds * 1000
    return Limit(name=KEY_RATE, key=f"key:{key_id}:rate:{window_ms}", limit=requests, window_ms=window_ms)


def organization_limits(*, plan: PlanSnapshot) -> list[Limit]:
    """The organization's allowances: the short rolling window, then the weekly one."""
    short_ms = plan.short_window_seconds * 1000
    weekly_ms = plan.weekly_window_seconds * 1000
    return [
        Limit(name=SHORT, key=f"org:short:{short_ms}", limit=plan.short_requests, window_ms=short_ms),
        Limit(name=WEEKLY, key=f"org:weekly:{weekly_ms}", limit=plan.weekly_requests, window_ms=weekly_ms),
    ]


def request_limits(*, plan: PlanSnapshot, key_id: int, key_limit: int | None = None) -> list[Limit]:
    """In the order the gateway checks them: the key's rate limit, then the organization's allowances."""
    return [key_rate_limit(plan=plan, key_id=key_id, key_limit=key_limit), *organization_limits(plan=plan)]


def scope_for(organization_id: int) -> str:
    return str(organization_id)
