"""Portal page fixtures: Acme on a plan with one model, a key, Acme's admission counters emptied, and ledger rows
written the way the drain writes them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import Organization, User
from billing.models import Plan
from metering.counters import allowance_rebuild
from metering.ingest import usage_events_write
from routing.models import ModelAlias, RouterPool
from tests.factories import DefaultPlanFactory, issue_key, verified
from tests.metering.events import lifecycle, refusal


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alias(db: Any) -> ModelAlias:
    pool = RouterPool.objects.create(slug="oss-20b", name="OSS 20B")
    ModelAlias.objects.create(alias="big-model", pool=pool, family="oss", weight=3, description="Slow and smart.")
    return ModelAlias.objects.create(alias="gpt-oss-20b", pool=pool, family="oss", weight=1, description="Fast.")


@pytest.fixture
def plan(alias: ModelAlias) -> Plan:
    plan = DefaultPlanFactory(key_rate_requests=60, short_requests=10, weekly_requests=100, all_models=False)
    plan.entitled_models.add(alias)
    return plan


@pytest.fixture
def key(org: Organization, owner: User, plan: Plan) -> Any:
    api_key, _ = issue_key(org, verified(owner), name="ci key")
    return api_key


def record(org: Organization, key: Any, *, ok: int = 0, refused: int = 0, failed: int = 0, **fields: Any) -> None:
    """Write requests to the ledger as the drain does, then set the admission counters from it (as after a rebuild):
    the page's numbers then come from the same place the gateway admits against."""
    events = []
    for _ in range(ok):
        events += lifecycle(organization_id=org.pk, key_id=key.pk, **fields)
    for _ in range(failed):
        events += lifecycle(organization_id=org.pk, key_id=key.pk, outcome="backend_error", refunded=True, **fields)
    for _ in range(refused):
        events.append(refusal(organization_id=org.pk, key_id=key.pk, outcome="quota_exhausted"))
    result = usage_events_write(events=events)
    assert not result.rejected
    allowance_rebuild(organization_id=org.pk)
