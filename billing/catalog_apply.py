"""Catalog as code: make the database's plans, router pools and model aliases match a file, or print them as one.

    catalog_apply(document=load_document(text, source="catalog.yaml"), prune=False, dry_run=False) -> Changes
    catalog_export() -> str

One transaction for the whole file: any problem (shape, value, dangling reference, a model's own validation) rolls
everything back and raises CatalogError listing every problem with its line (YAML) or JSON path. A dry run applies
the same way and rolls back, so `--check` reports exactly what `apply` would do. Entries the file leaves out are
left alone unless `prune`, which deletes what a section present in the file leaves out (a section the file does
not have is never pruned). The gateway hears about committed changes through the invalidation channel.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db import transaction

from accounts.audit import audit_record
from billing.catalog import PlanSpec, apply_plans, check_default, export_plans, parse_plans, prune_plans
from billing.models import Plan
from portal.invalidation import publish_on_commit
from routing.catalog import (
    AliasSpec,
    PoolSpec,
    apply_models,
    apply_pools,
    export_models,
    export_pools,
    parse_models,
    parse_pools,
    prune_models,
    prune_pools,
)
from routing.catalog_file import CatalogError, Changes, Document, Reader, dump_yaml
from routing.models import ModelAlias, RouterPool
from routing.services import routing_changed

SECTIONS = ("plans", "pools", "models")
PARSERS: dict[str, Callable[[Reader, Any], Any]] = {"plans": parse_plans, "pools": parse_pools, "models": parse_models}
HEADER = (
    "# Cortensor Portal catalog: plans, router pools and model aliases (`manage.py catalog export`).\n"
    "# Apply with `manage.py catalog apply FILE`; router keys stay in the environment variables named here.\n"
)


def catalog_apply(*, document: Document, prune: bool = False, dry_run: bool = False) -> Changes:
    reader = Reader(document)
    data = document.data
    if not isinstance(data, dict):
        raise CatalogError([f"{document.where(())}: a catalog is a mapping with {', '.join(SECTIONS)}"])
    reader.entry((), data, required=(), optional=SECTIONS)
    parsed: dict[str, Any] = {}
    for section in data:  # in the file's order, so problems are listed top to bottom
        if section in PARSERS:
            parsed[section] = PARSERS[section](reader, data[section])
    pools, models, plans = parsed.get("pools", []), parsed.get("models", []), parsed.get("plans", [])

    changes = Changes()
    with transaction.atomic():
        pruned = {section for section in SECTIONS if prune and section in data}  # a section left out is left alone
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
        if "plans" in data:
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


def catalog_export(*, json_format: bool = False) -> str:
    sections: dict[str, Any] = {"plans": export_plans(), "pools": export_pools(), "models": export_models()}
    if json_format:
        return json.dumps(sections, indent=2) + "\n"
    return dump_yaml(sections, header=HEADER)
