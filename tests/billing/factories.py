"""Factories for plans, subscriptions, upgrade requests, and the usage roll-ups the ledger prices."""

from __future__ import annotations

from datetime import datetime

import factory
from django.db.models import F

from accounts.models import Organization
from billing.models import LedgerEntry, LedgerKind, Plan, Subscription, UpgradeRequest
from metering.models import Granularity, UsageRollup
from metering.rollups import bucket_start
from tests.factories import OrganizationFactory, UserFactory


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    key_rate_requests = 20
    key_rate_window_seconds = 60
    short_requests = 200
    short_window_seconds = 18_000
    weekly_requests = 1000
    weekly_window_seconds = 604_800
    all_models = True

    @factory.post_generation
    def models(self, create: bool, aliases: list[object] | None, **kwargs: object) -> None:
        if create and aliases:
            self.all_models = False
            self.save(update_fields=["all_models"])
            self.entitled_models.set(aliases)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    organization = factory.SubFactory(OrganizationFactory)
    plan = factory.SubFactory(PlanFactory)


def usage_rollups_add(
    *,
    organization: Organization,
    at: datetime,
    model: str = "chat-small",
    key_id: int = 0,
    requests: int = 1,
    billed_requests: int | None = None,
    cost_units: int | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> None:
    """Add usage to the hourly and daily roll-ups around `at`, as metering's ingestion does: the same totals land in
    the hour and in the day. Counted requests and units default to the requests (every request let through, weight 1).
    """
    billed = requests if billed_requests is None else billed_requests
    units = billed if cost_units is None else cost_units
    for granularity in (Granularity.HOUR, Granularity.DAY):
        row, _ = UsageRollup.objects.get_or_create(
            granularity=granularity,
            bucket_start=bucket_start(at, granularity),
            organization=organization,
            key_id=key_id,
            model=model,
        )
        UsageRollup.objects.filter(pk=row.pk).update(
            requests=F("requests") + requests,
            billed_requests=F("billed_requests") + billed,
            cost_units=F("cost_units") + units,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            outcome_ok=F("outcome_ok") + billed,
        )


class UpgradeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpgradeRequest

    organization = factory.SubFactory(OrganizationFactory)
    to_plan = factory.SubFactory(PlanFactory)


class OperatorEntryFactory(factory.django.DjangoModelFactory):
    """A grant (or, with kind and a signed amount, an adjustment) made at a chosen moment: services stamp "now", and
    statements need entries in past months. Inserting is all the append-only ledger allows, so this is a real row."""

    class Meta:
        model = LedgerEntry

    organization = factory.SubFactory(OrganizationFactory)
    kind = LedgerKind.GRANT
    amount_micro = 1_000_000
    memo = "Test grant"
    created_by = factory.SubFactory(UserFactory)
