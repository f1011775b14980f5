"""Redis flushed: the admission counters rebuilt from the ledger show exactly what they showed before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apikeys.models import ApiKey
from billing.admission import get_engine
from billing.models import Subscription
from metering.counters import allowance_rebuild, allowance_rebuild_all
from metering.ingest import usage_events_ingest
from metering.ledger import datetime_to_ms
from tests.factories import PlanFactory, issue_key
from tests.metering.events import lifecycle
from tests.metering.helpers import admit, status

pytestmark = pytest.mark.django_db


def served(org: Any, key: Any, at_ms: int, **options: Any) -> None:
    """One request as the gateway handles it: booked in the admission engine, then its events in the ledger."""
    admit(
        organization_id=org.pk,
        key_id=key.pk,
        at_ms=at_ms,
        cost=options.get("cost", 1),
        degraded=options.get("allowance_class") == "degraded",
    )
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=at_ms, **options))


def test_counters_rebuilt_from_the_ledger_after_a_flush_match_what_they_were(
    org: Any, key: ApiKey, owner: Any, counters: str
) -> None:
    second_key, _ = issue_key(org, owner, name="second")
    now = datetime_to_ms(timezone.now())
    for minutes_ago in (3 * 24 * 60, 6 * 60, 4 * 60, 90, 30, 2):  # weekly only, then inside the short window too
        served(org, key, now - minutes_ago * 60_000, cost=2)
    for seconds_ago in (50, 40, 30, 5):  # inside the key's one-minute window
        served(org, key, now - seconds_ago * 1000)
        served(org, second_key, now - seconds_ago * 1000 - 7, model="gemma-3")
    served(org, key, now - 20_000, allowance_class="degraded")  # over the allowance: booked for the key only
    refused_backend = now - 10_000
    served(org, key, refused_backend, outcome="backend_error", refunded=True)
    before = [status(organization_id=org.pk, key_id=k.pk, now_ms=now) for k in (key, second_key)]
    assert [state.used for state in before[0]] == [6, 17, 21]  # type: ignore[attr-defined]
    _refund_in_engine(org, key, refused_backend)  # the gateway's refund, which the ledger records as refunded
    before = [status(organization_id=org.pk, key_id=k.pk, now_ms=now) for k in (key, second_key)]

    get_engine().reset_sync(scope=counters)  # Redis flushed
    assert all(state.used == 0 for state in status(organization_id=org.pk, key_id=key.pk, now_ms=now))  # type: ignore[attr-defined]
    written = allowance_rebuild(organization_id=org.pk, now_ms=now)

    after = [status(organization_id=org.pk, key_id=k.pk, now_ms=now) for k in (key, second_key)]
    assert after == before
    assert written == 4  # short, weekly, and the rate limit of each key


def _refund_in_engine(org: Any, key: Any, at_ms: int) -> None:
    import asyncio

    from billing.allowances import request_limits, scope_for
    from billing.selectors import plan_snapshot_for_organization
    from portal.redis import aclose_clients

    limits = request_limits(plan=plan_snapshot_for_organization(organization_id=org.pk), key_id=key.pk)

    async def refund() -> None:
        await get_engine().refund(scope=scope_for(org.pk), limits=limits, cost=1, admitted_at_ms=at_ms)
        await aclose_clients()

    asyncio.run(refund())


def test_rebuilding_every_organization_and_the_command_restore_the_same_counters(
    org: Any, key: ApiKey, counters: str
) -> None:
    now = datetime_to_ms(timezone.now())
    for seconds_ago in (300, 200, 100):
        served(org, key, now - seconds_ago * 1000)
    before = status(organization_id=org.pk, key_id=key.pk, now_ms=now)

    get_engine().reset_sync(scope=counters)
    assert allowance_rebuild_all(now_ms=now) == 1
    assert status(organization_id=org.pk, key_id=key.pk, now_ms=now) == before

    get_engine().reset_sync(scope=counters)
    out = StringIO()
    call_command("rebuild_allowances", "--organization", "acme", "--no-drain", stdout=out)
    assert "rebuilt 3 counters of acme" in out.getvalue()
    later = datetime_to_ms(timezone.now())
    assert [s.used for s in status(organization_id=org.pk, key_id=key.pk, now_ms=later)] == [  # type: ignore[attr-defined]
        s.used  # type: ignore[attr-defined]
        for s in before
    ]


def test_a_plan_change_that_alters_a_window_starts_that_counter_afresh(org: Any, key: ApiKey, counters: str) -> None:
    now = datetime_to_ms(timezone.now())
    changed_at = datetime.fromtimestamp((now - 3_600_000) / 1000, tz=UTC)
    for minutes_ago in (100, 80, 70):  # on the default plan (5-hour short window)
        served(org, key, now - minutes_ago * 60_000)
    wider = PlanFactory(slug="pro", name="Pro", key_rate_requests=60, short_window_seconds=36_000)
    Subscription.objects.create(organization=org, plan=wider, started_at=changed_at)
    for minutes_ago in (50, 40):  # on Pro: the gateway books these in a new 10-hour counter
        served(org, key, now - minutes_ago * 60_000)

    allowance_rebuild(organization_id=org.pk, now_ms=now)

    short, weekly = status(organization_id=org.pk, key_id=key.pk, now_ms=now)[1:]
    assert (short.used, weekly.used) == (2, 5)  # type: ignore[attr-defined]
    assert changed_at < timezone.now() - timedelta(minutes=59)
