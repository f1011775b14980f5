"""Assertions shared by metering tests."""

from __future__ import annotations

from datetime import UTC, datetime

from metering.models import Granularity, UsageRollup
from metering.rollups import rollups_computed, rollups_stored

_EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def rollups_now() -> dict[object, list[int]]:
    """Every non-empty roll-up row, hourly and daily."""
    found: dict[object, list[int]] = {}
    for granularity in Granularity.values:
        stored = rollups_stored(granularity=granularity, since=_EVER[0], until=_EVER[1])
        found.update({key: values for key, values in stored.items() if any(values)})
    return found


def assert_rollups_exact() -> None:
    """The roll-ups hold exactly what the raw rows say: no request counted twice, none missing."""
    for granularity in Granularity.values:
        want = rollups_computed(granularity=granularity, since=_EVER[0], until=_EVER[1])
        have = {
            key: values
            for key, values in rollups_stored(granularity=granularity, since=_EVER[0], until=_EVER[1]).items()
            if any(values)
        }
        assert have == want, f"{granularity} roll-ups differ from the ledger"


def total_requests() -> int:
    return sum(row.requests for row in UsageRollup.objects.filter(granularity=Granularity.DAY))


def admit(*, organization_id: int, key_id: int, at_ms: int, cost: int = 1, degraded: bool = False) -> None:
    """Book a request in the admission engine as the gateway does (billing.allowances limits), at `at_ms`."""
    import asyncio

    from billing.admission import get_engine
    from billing.allowances import request_limits, scope_for
    from billing.selectors import plan_snapshot_for_organization
    from portal.redis import aclose_clients

    limits = request_limits(plan=plan_snapshot_for_organization(organization_id=organization_id), key_id=key_id)
    if degraded:
        limits = limits[:1]

    async def book() -> None:
        try:
            decision = await get_engine().admit(
                scope=scope_for(organization_id), limits=limits, cost=cost, now_ms=at_ms
            )
            assert decision.admitted, decision
        finally:
            await aclose_clients()

    asyncio.run(book())


def status(*, organization_id: int, key_id: int, now_ms: int) -> tuple[object, ...]:
    """What the usage page and the gateway see: every counter of the organization and the key, at `now_ms`."""
    from billing.admission import get_engine
    from billing.allowances import request_limits, scope_for
    from billing.selectors import plan_snapshot_for_organization

    limits = request_limits(plan=plan_snapshot_for_organization(organization_id=organization_id), key_id=key_id)
    return get_engine().status_sync(scope=scope_for(organization_id), limits=limits, now_ms=now_ms)
