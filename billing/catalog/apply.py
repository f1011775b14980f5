"""Applying a catalog file: make the database's plans, router pools and model aliases match it.

One transaction for the whole file: any problem (shape, value, dangling reference, a model's own validation) rolls
everything back and raises CatalogError listing every problem with its line (YAML) or JSON path. A dry run applies
the same way and rolls back, so `--check` reports exactly what `apply` would do. Entries the file leaves out are
left alone unless `prune`, which deletes what a section present in the file leaves out (a section the file does
not have is never pruned). The gateway hears about committed changes through the invalidation channel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from accounts.audit import audit_record
from billing.catalog.file import Document, Reader, read_catalog
from billing.catalog_section import PlanSpec, apply_plans, check_default, prune_plans
from billing.models import Plan
from portal.invalidation import publish_on_commit
from routing.catalog_section import (
    AliasSpec,
    PoolSpec,
    apply_models,
    apply_pools,
    prune_models,
    prune_pools,
)
from routing.models import ModelAlias, RouterPool
from routing.services import routing_changed


@dataclass
class Changes:
    """What an apply did (or would do), one line per change, in the order they happened."""

    lines: list[str] = field(default_factory=list)
    routing: bool = False  # pools, targets or aliases changed
    plans: set[str] = field(default_factory=set)  # slugs of plans that changed

    def __bool__(self) -> bool:
        return bool(self.lines)

    def create(self, kind: str, name: str) -> None:
        self.lines.append(f"+ {kind} {name}")

    def update(self, kind: str, name: str, key: str, old: Any, new: Any) -> None:
        self.lines.append(f"~ {kind} {name}: {key} {_brief(old)} -> {_brief(new)}")

    def delete(self, kind: str, name: str, note: str = "") -> None:
        self.lines.append(f"- {kind} {name}" + (f" ({note})" if note else ""))

    def sync_fields(
        self, obj: Any, values: Mapping[str, Any], *, kind: str, name: str, labels: Mapping[str, str]
    ) -> bool:
        """Set the fields of an existing row that differ from `values`, recording each change. True if any did."""
        changed = False
        for field_name, value in values.items():
            old = getattr(obj, field_name)
            if old != value:
                self.update(kind, name, labels.get(field_name, field_name), _plain(old), _plain(value))
                setattr(obj, field_name, value)
                changed = True
        return changed


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(getattr(value, "slug", None) or getattr(value, "alias", None) or value)


def catalog_apply(*, document: Document, prune: bool = False, dry_run: bool = False) -> Changes:
    catalog = read_catalog(document)
    reader, pools, models, plans = catalog.reader, catalog.pools, catalog.models, catalog.plans

    changes = Changes()
    with transaction.atomic():
        pruned = catalog.sections if prune else set()  # a section left out is left alone
        known = _known(pools, models, plans, pruned=pruned)
        _check_references(reader, models, plans, known)
        reader.raise_if_any()
        apply_pools(pools, reader=reader, changes=changes)
        apply_models(models, reader=reader, changes=changes, known_pools=known["pools"])
        apply_plans(plans, reader=reader, changes=changes, known_aliases=known["models"], known_plans=known["plans"])
        if "plans" in pruned:
            prune_plans(plans, changes=changes)
        if "models" in pruned:
            prune_models(models, reader=reader, changes=changes)
        if "pools" in pruned:
            prune_pools(pools, reader=reader, changes=changes)
        if "plans" in catalog.sections:
            check_default(reader, ("plans",))
        reader.raise_if_any()  # raising inside the block rolls every change back
        if dry_run:
            transaction.set_rollback(True)
        elif changes:
            _announce(document, changes)
    return changes


def _known(
    pools: list[PoolSpec], models: list[AliasSpec], plans: list[PlanSpec], *, pruned: set[str]
) -> dict[str, set[str]]:
    """What references may name once the file is applied: its own entries, and the database's unless pruned."""
    known = {
        "pools": {spec.slug for spec in pools},
        "models": {spec.alias for spec in models},
        "plans": {spec.slug for spec in plans},
    }
    if "pools" not in pruned:
        known["pools"].update(RouterPool.objects.values_list("slug", flat=True))
    if "models" not in pruned:
        known["models"].update(ModelAlias.objects.values_list("alias", flat=True))
    if "plans" not in pruned:
        known["plans"].update(Plan.objects.values_list("slug", flat=True))
    return known


def _check_references(
    reader: Reader, models: list[AliasSpec], plans: list[PlanSpec], known: dict[str, set[str]]
) -> None:
    for model in models:
        if model.pool not in known["pools"]:
            reader.problem((*model.path, "pool"), f"no pool '{model.pool}' (declare it under pools:)")
    for plan in plans:
        for index, name in enumerate(plan.models):
            if name not in known["models"]:
                reader.problem((*plan.path, "models", index), f"no model '{name}' (declare it under models:)")
        if plan.degrade_to is not None and plan.degrade_to not in known["models"]:
            reader.problem((*plan.path, "degrade_to"), f"no model '{plan.degrade_to}' (declare it under models:)")
        if plan.upgrade_to is not None and plan.upgrade_to not in known["plans"]:
            reader.problem((*plan.path, "upgrade_to"), f"no plan '{plan.upgrade_to}' (declare it under plans:)")


def _announce(document: Document, changes: Changes) -> None:
    audit_record(
        action="catalog.apply",
        actor=None,
        target=document.source[:200],
        data={"changes": changes.lines[:500], "count": len(changes.lines)},
    )
    if changes.routing:
        routing_changed()
    for slug in sorted(changes.plans):
        publish_on_commit("plan", slug)
