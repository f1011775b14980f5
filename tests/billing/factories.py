"""Factories for plans and subscriptions."""

from __future__ import annotations

import factory

from billing.models import Plan, Subscription
from tests.factories import OrganizationFactory


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
