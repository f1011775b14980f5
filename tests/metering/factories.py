"""Builders for metering tests: lifecycle events as the gateway sends them, and a default plan."""

from __future__ import annotations

import time
from typing import Any

from billing.models import Plan
from metering.events import LifecycleEvent
from portal.request_ids import new_request_id


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def default_plan(**fields: Any) -> Plan:
    values: dict[str, Any] = {
        "slug": "free",
        "name": "Free",
        "is_default": True,
        "key_rate_requests": 60,
        "key_rate_window_seconds": 60,
        "short_requests": 200,
        "short_window_seconds": 18_000,
        "weekly_requests": 1000,
        "weekly_window_seconds": 604_800,
        "all_models": True,
    }
    values.update(fields)
    return Plan.objects.create(**values)


def lifecycle(
    *,
    organization_id: int,
    key_id: int,
    at_ms: int | None = None,
    request_id: str | None = None,
    model: str = "gpt-oss-20b",
    outcome: str = "ok",
    cost: int = 1,
    prompt_tokens: int = 12,
    completion_tokens: int = 34,
    user_id: int | None = None,
    stream: bool = False,
    refunded: bool = False,
    stages: tuple[str, ...] = ("accepted", "forwarded", "completed"),
    allowance_class: str = "standard",
) -> list[LifecycleEvent]:
    """The events of one admitted request, 10 ms apart, as gateway/completions.py writes them."""
    start = now_ms() if at_ms is None else at_ms
    request_id = request_id or new_request_id(start)
    common: dict[str, Any] = {
        "request_id": request_id,
        "organization_id": organization_id,
        "key_id": key_id,
        "user_id": user_id,
        "model": model,
        "plan": "free",
        "stream": stream,
    }
    events = {
        "accepted": LifecycleEvent(
            stage="accepted",
            at_ms=start,
            served_model=model,
            family="oss",
            allowance_class=allowance_class,
            cost_units=cost,
            admitted_at_ms=start,
            **common,
        ),
        "forwarded": LifecycleEvent(stage="forwarded", at_ms=start + 10, served_model=model, target_id=7, **common),
        "completed": LifecycleEvent(
            stage="completed",
            at_ms=start + 20,
            served_model=model,
            family="oss",
            allowance_class=allowance_class,
            cost_units=0 if refunded else cost,
            admitted_at_ms=start,
            outcome=outcome,
            status_code=200 if outcome == "ok" else 502,
            target_id=7,
            latency_ms=20,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            refunded=refunded,
            **common,
        ),
    }
    return [events[stage] for stage in stages]


def refusal(
    *, organization_id: int, key_id: int, at_ms: int | None = None, outcome: str = "rate_limited", model: str = ""
) -> LifecycleEvent:
    start = now_ms() if at_ms is None else at_ms
    return LifecycleEvent(
        stage="refused",
        request_id=new_request_id(start),
        at_ms=start,
        organization_id=organization_id,
        key_id=key_id,
        model=model or "gpt-oss-20b",
        plan="free",
        outcome=outcome,
        status_code=429 if outcome in ("rate_limited", "quota_exhausted") else 400,
        latency_ms=1,
    )
