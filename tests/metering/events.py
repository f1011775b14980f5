"""Lifecycle events as the gateway sends them, for metering tests. Events are messages, not rows: the model rows
tests need come from tests/factories.py."""

from __future__ import annotations

import time
from typing import Any

from metering.events import LifecycleEvent
from portal.request_ids import new_request_id


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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


def completed_requests(organization: Any, key: Any, count: int) -> list[LifecycleEvent]:
    """The events of `count` requests of `key` that were served (accepted, forwarded, completed)."""
    return [event for _ in range(count) for event in lifecycle(organization_id=organization.pk, key_id=key.pk)]
