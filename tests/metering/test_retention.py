"""Retention: raw events past the configured days are pruned; roll-ups stay, even through reconciliation."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from apikeys.models import ApiKey
from metering.ingest import usage_events_ingest
from metering.ledger import datetime_to_ms
from metering.models import Granularity, UsageEvent, UsageRollup
from metering.reconcile import usage_reconcile
from metering.retention import usage_events_prune
from tests.metering.events import lifecycle
from tests.metering.helpers import rollups_now

pytestmark = pytest.mark.django_db


@override_settings(METERING_RETENTION_DAYS=30)
def test_old_raw_events_are_pruned_and_their_roll_ups_kept(org: Any, key: ApiKey, counters: str) -> None:
    now = timezone.now()
    for days_ago in (45, 44, 31, 2, 0):
        at = datetime_to_ms(now - timedelta(days=days_ago, minutes=5))
        usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=at))
    rollups = rollups_now()

    assert usage_events_prune(now=now) == 3

    assert UsageEvent.objects.count() == 2
    assert rollups_now() == rollups
    usage_reconcile(since=now - timedelta(days=60), drain_first=False, now=now)  # must not "repair" old days away
    assert rollups_now() == rollups
    assert sum(r.requests for r in UsageRollup.objects.filter(granularity=Granularity.DAY)) == 5


@override_settings(METERING_RETENTION_DAYS=30)
def test_the_prune_task_deletes_old_rows(org: Any, key: ApiKey) -> None:
    from metering.tasks import prune_usage_events

    old = datetime_to_ms(timezone.now() - timedelta(days=40))
    usage_events_ingest(events=lifecycle(organization_id=org.pk, key_id=key.pk, at_ms=old))

    assert prune_usage_events()["deleted"] == 1
    assert not UsageEvent.objects.exists()
