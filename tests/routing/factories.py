"""Factories for router pools, targets and model aliases."""

from __future__ import annotations

import factory

from routing.models import ModelAlias, Protocol, RouterPool, RouterTarget


class RouterPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RouterPool

    slug = factory.Sequence(lambda n: f"pool-{n}")
    name = factory.Sequence(lambda n: f"Pool {n}")


class RouterTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RouterTarget

    pool = factory.SubFactory(RouterPoolFactory)
    name = factory.Sequence(lambda n: f"router-{n}")
    base_url = factory.Sequence(lambda n: f"http://10.0.0.{n % 250 + 1}:8100")
    protocol = Protocol.CORTENSOR
    session_id = 7
    api_key_env = "TEST_ROUTER_KEY"
    weight = 1


class ModelAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelAlias

    alias = factory.Sequence(lambda n: f"model-{n}")
    pool = factory.SubFactory(RouterPoolFactory)
    family = "oss"
