"""The routing table: an immutable in-memory snapshot of aliases → pool → targets, for the gateway's hot path.

The gateway loads it once (two queries), keeps it per worker, and loads a new one when a "routing" invalidation
arrives (portal/invalidation.py). Only what may serve traffic is in it: enabled aliases, and in each alias's route
the enabled, non-draining targets of its pool (none when the pool is disabled). Router keys are read from the
environment here, once per load, and never printed (`repr=False`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from routing.prompts import DEFAULT_PROMPT_TEMPLATE

if TYPE_CHECKING:  # the entries and the table import no Django, so adapters stay plain functions
    from django.db.models import QuerySet

    from routing.models import ModelAlias, RouterTarget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetEntry:
    id: int
    pool_id: int
    name: str
    protocol: str
    base_url: str
    session_id: int | None = None
    weight: int = 1
    api_key: str = field(default="", repr=False)
    probe_healthy: bool = True  # False when the last active probe failed


@dataclass(frozen=True)
class AliasRoute:
    alias: str
    pool_id: int
    pool_slug: str
    family: str = ""
    weight: int = 1  # allowance units one request costs
    upstream_model: str = ""
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    description: str = ""
    targets: tuple[TargetEntry, ...] = ()

    @property
    def upstream_name(self) -> str:
        return self.upstream_model or self.alias

    @property
    def target_ids(self) -> tuple[int, ...]:
        return tuple(target.id for target in self.targets)


@dataclass(frozen=True)
class RoutingTable:
    routes: Mapping[str, AliasRoute]
    loaded_at: float = 0.0

    def route(self, alias: str) -> AliasRoute | None:
        """The route of an enabled alias, or None (the gateway answers 404 model_not_found)."""
        return self.routes.get(alias)

    def aliases(self) -> list[str]:
        return sorted(self.routes)


def build_routing_table(aliases: Iterable[ModelAlias], targets: Iterable[RouterTarget]) -> RoutingTable:
    by_pool: dict[int, list[TargetEntry]] = {}
    for target in targets:
        by_pool.setdefault(target.pool_id, []).append(_target_entry(target))
    routes = {}
    for alias in aliases:
        pool = alias.pool
        routes[alias.alias] = AliasRoute(
            alias=alias.alias,
            pool_id=pool.id,
            pool_slug=pool.slug,
            family=alias.family,
            weight=alias.weight,
            upstream_model=alias.upstream_model,
            prompt_template=alias.prompt_template,
            description=alias.description,
            targets=tuple(by_pool.get(pool.id, ())) if pool.enabled else (),
        )
    return RoutingTable(routes=MappingProxyType(routes), loaded_at=time.time())


def _alias_queryset() -> QuerySet[ModelAlias]:
    from routing.models import ModelAlias

    return ModelAlias.objects.filter(enabled=True).select_related("pool").order_by("alias")


def _target_queryset() -> QuerySet[RouterTarget]:
    from routing.models import RouterTarget

    return RouterTarget.objects.filter(enabled=True, draining=False, pool__enabled=True).order_by("pool_id", "id")


def load_routing_table() -> RoutingTable:
    return build_routing_table(list(_alias_queryset()), list(_target_queryset()))


async def aload_routing_table() -> RoutingTable:
    aliases = [alias async for alias in _alias_queryset()]
    targets = [target async for target in _target_queryset()]
    return build_routing_table(aliases, targets)


def _target_entry(target: RouterTarget) -> TargetEntry:
    key = os.environ.get(target.api_key_env, "") if target.api_key_env else ""
    if target.api_key_env and not key:
        log.warning("router key variable %s of target %s is not set", target.api_key_env, target.id)
    return TargetEntry(
        id=target.id,
        pool_id=target.pool_id,
        name=target.name,
        protocol=target.protocol,
        base_url=target.base_url.rstrip("/"),
        session_id=target.session_id,
        weight=target.weight,
        api_key=key,
        probe_healthy=target.health_status != "unhealthy",
    )
