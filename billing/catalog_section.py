"""The `plans:` section of the catalog file (format: docs/catalog.md; the file is billing/catalog/).

A plan's allowances are exactly one `short` and one `weekly` rolling window; `models: ["*"]` means every alias.
Plans refer to model aliases (`models`, `degrade_to`) and to other plans (`upgrade_to`); a reference to something
that will not exist after the apply is an error.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from billing.models import OverLimit, Plan
from routing.catalog_section import Changes, Path, Reader
from routing.models import ModelAlias

SLUG_RE = r"[-a-zA-Z0-9_]+"
ALL_MODELS = "*"
WINDOWS = ("short", "weekly")
LABELS = {
    "is_default": "default",
    "all_models": "models",
    "key_rate_requests": "key_rate_limit.requests",
    "key_rate_window_seconds": "key_rate_limit.window_seconds",
    "short_requests": "allowances.short.requests",
    "short_window_seconds": "allowances.short.window_seconds",
    "weekly_requests": "allowances.weekly.requests",
    "weekly_window_seconds": "allowances.weekly.window_seconds",
}
OPTIONAL = ("default", "over_limit", "degrade_to", "price_text", "description", "upgrade_to", "sort_order", "active")


@dataclass
class PlanSpec:
    path: Path
    slug: str
    values: dict[str, Any]
    models: list[str]  # alias names; empty with all_models
    degrade_to: str | None
    upgrade_to: str | None


def parse_plans(reader: Reader, value: Any, path: Path = ("plans",)) -> list[PlanSpec]:
    specs: list[PlanSpec] = []
    seen: set[str] = set()
    required = ("slug", "name", "key_rate_limit", "allowances", "models")
    for index, item in enumerate(reader.items(path, value)):
        here = (*path, index)
        entry = reader.entry(here, item, required=required, optional=OPTIONAL)
        if entry is None:
            continue
        slug = reader.text((*here, "slug"), entry["slug"], pattern=SLUG_RE, max_length=40)
        values: dict[str, Any] = {
            "name": reader.text((*here, "name"), entry["name"], max_length=80),
            "is_default": reader.flag((*here, "default"), entry.get("default", False)),
            "active": reader.flag((*here, "active"), entry.get("active", True)),
            "over_limit": reader.choice((*here, "over_limit"), entry.get("over_limit", "deny"), OverLimit.values),
            "price_text": reader.text((*here, "price_text"), entry.get("price_text", ""), max_length=80, blank=True),
            "description": reader.text(
                (*here, "description"), entry.get("description", ""), max_length=2000, blank=True
            ),
            "sort_order": reader.number((*here, "sort_order"), entry.get("sort_order", 0), minimum=-(2**31)),
        }
        values.update(_key_rate(reader, (*here, "key_rate_limit"), entry["key_rate_limit"]))
        values.update(_allowances(reader, (*here, "allowances"), entry["allowances"]))
        models = _models(reader, (*here, "models"), entry["models"])
        values["all_models"] = models == [ALL_MODELS]
        degrade_to = entry.get("degrade_to")
        if degrade_to is not None:
            degrade_to = reader.text((*here, "degrade_to"), degrade_to, max_length=80)
        if values["over_limit"] == OverLimit.DEGRADE and degrade_to is None and "degrade_to" not in entry:
            reader.problem(here, "over_limit: degrade needs 'degrade_to' (the alias that serves requests over it)")
        if values["over_limit"] == OverLimit.DENY and degrade_to is not None:
            reader.problem((*here, "degrade_to"), "only plans with over_limit: degrade have a degrade_to")
        upgrade_to = entry.get("upgrade_to")
        if upgrade_to is not None:
            upgrade_to = reader.text((*here, "upgrade_to"), upgrade_to, pattern=SLUG_RE, max_length=40)
        if slug is not None and slug in seen:
            reader.problem((*here, "slug"), f"plan '{slug}' is declared twice")
        if slug is None or models is None or any(v is None for v in values.values()):
            continue
        if values["is_default"] and any(spec.values["is_default"] for spec in specs):
            reader.problem((*here, "default"), "only one plan can be the default")
        seen.add(slug)
        names = [] if values["all_models"] else models
        specs.append(PlanSpec(here, slug, values, names, degrade_to, upgrade_to))
    return specs


def _key_rate(reader: Reader, path: Path, value: Any) -> dict[str, Any]:
    entry = reader.entry(path, value, required=("requests", "window_seconds"))
    if entry is None:
        return {"key_rate_requests": None}
    return {
        "key_rate_requests": reader.number((*path, "requests"), entry["requests"]),
        "key_rate_window_seconds": reader.number((*path, "window_seconds"), entry["window_seconds"]),
    }


def _allowances(reader: Reader, path: Path, value: Any) -> dict[str, Any]:
    found: dict[str, dict[str, Any]] = {}
    for index, item in enumerate(reader.items(path, value)):
        here = (*path, index)
        entry = reader.entry(here, item, required=("name", "requests", "window_seconds"))
        if entry is None:
            continue
        name = reader.choice((*here, "name"), entry["name"], WINDOWS)
        if name is not None and name in found:
            reader.problem((*here, "name"), f"the '{name}' allowance is given twice")
            continue
        if name is not None:
            found[name] = {
                f"{name}_requests": reader.number((*here, "requests"), entry["requests"]),
                f"{name}_window_seconds": reader.number((*here, "window_seconds"), entry["window_seconds"]),
            }
    if set(found) != set(WINDOWS):
        missing = [name for name in WINDOWS if name not in found]
        if missing:
            reader.problem(path, f"allowances need one 'short' and one 'weekly' window; missing {', '.join(missing)}")
        return {"short_requests": None}
    values = {**found["short"], **found["weekly"]}
    short, weekly = values["short_window_seconds"], values["weekly_window_seconds"]
    if short is not None and weekly is not None and short >= weekly:
        reader.problem(path, f"the short window ({short}s) must be shorter than the weekly window ({weekly}s)")
    return values


def _models(reader: Reader, path: Path, value: Any) -> list[str] | None:
    if not isinstance(value, list):
        reader.problem(path, 'must be a list of model aliases, or ["*"] for all')
        return None
    names = []
    for index, item in enumerate(value):
        name = reader.text((*path, index), item, max_length=80)
        if name is not None:
            names.append(name)
    if ALL_MODELS in names and len(value) > 1:
        reader.problem(path, '"*" means all models and stands alone')
        return None
    if len(set(names)) != len(names):
        reader.problem(path, "lists a model twice")
    return names if len(names) == len(value) else None


def apply_plans(
    specs: list[PlanSpec],
    *,
    reader: Reader,
    changes: Changes,
    known_aliases: Collection[str],
    known_plans: Collection[str],
) -> None:
    """`known_*`: what references may name (the file's entries, plus the database's unless pruning)."""
    aliases = {alias.alias: alias for alias in ModelAlias.objects.all()}
    existing = {plan.slug: plan for plan in Plan.objects.prefetch_related("entitled_models")}
    _release_default(specs, existing, changes)
    saved: dict[str, Plan] = {}
    for spec in specs:
        degrade_to = _resolve(reader, spec, aliases, known_aliases)
        entitled = [aliases.get(name) for name in spec.models]
        for index, (name, alias) in enumerate(zip(spec.models, entitled, strict=True)):
            if alias is None or name not in known_aliases:
                reader.problem((*spec.path, "models", index), f"no model '{name}' (declare it under models:)")
        if degrade_to is False or None in entitled:
            continue
        values = {**spec.values, "degrade_to": degrade_to}
        plan = existing.get(spec.slug)
        if plan is None:
            plan = Plan(slug=spec.slug, **values)
            changes.create("plan", spec.slug)
            dirty, old_models = True, None
        else:
            dirty = changes.sync_fields(plan, values, kind="plan", name=spec.slug, labels=LABELS)
            old_models = [alias.alias for alias in plan.entitled_models.all()]
        if dirty and not reader.save_checked(plan, path=spec.path, labels=LABELS):
            continue
        if old_models is not None and sorted(old_models) != sorted(spec.models):
            changes.update("plan", spec.slug, "models", sorted(old_models), sorted(spec.models))
            dirty = True
        if old_models is None or dirty:
            plan.entitled_models.set([alias for alias in entitled if alias is not None])
        if dirty:
            changes.plans.add(spec.slug)
        saved[spec.slug] = plan
    _link_upgrades(specs, saved, reader=reader, changes=changes, known_plans=known_plans)


def _release_default(specs: list[PlanSpec], existing: dict[str, Plan], changes: Changes) -> None:
    """Unset the default flag where the file takes it away, before any plan takes it (one default at a time)."""
    in_file = {spec.slug: spec for spec in specs}
    file_default = any(spec.values["is_default"] for spec in specs)
    for plan in existing.values():
        spec = in_file.get(plan.slug)
        loses = spec is not None and not spec.values["is_default"]
        if plan.is_default and (loses or (spec is None and file_default)):
            changes.update("plan", plan.slug, "default", True, False)
            changes.plans.add(plan.slug)
            plan.is_default = False
            plan.save(update_fields=["is_default"])


def _resolve(reader: Reader, spec: PlanSpec, aliases: dict[str, ModelAlias], known: Collection[str]) -> Any:
    """The degrade_to alias, None when there is none, False when it names nothing."""
    if spec.degrade_to is None:
        return None
    alias = aliases.get(spec.degrade_to)
    if alias is None or spec.degrade_to not in known:
        reader.problem((*spec.path, "degrade_to"), f"no model '{spec.degrade_to}' (declare it under models:)")
        return False
    return alias


def _link_upgrades(
    specs: list[PlanSpec], saved: dict[str, Plan], *, reader: Reader, changes: Changes, known_plans: Collection[str]
) -> None:
    plans = {plan.slug: plan for plan in Plan.objects.all()}
    for spec in specs:
        plan = saved.get(spec.slug)
        if plan is None:
            continue
        target = None
        if spec.upgrade_to is not None:
            target = plans.get(spec.upgrade_to) if spec.upgrade_to in known_plans else None
            if target is None:
                reader.problem((*spec.path, "upgrade_to"), f"no plan '{spec.upgrade_to}'")
                continue
        if plan.upgrade_to_id != (target.pk if target else None):
            current = plans[spec.slug].upgrade_to
            old = current.slug if current is not None else None
            changes.update("plan", spec.slug, "upgrade_to", old, spec.upgrade_to)
            changes.plans.add(spec.slug)
            plan.upgrade_to = target
            reader.save_checked(plan, path=spec.path, labels=LABELS)


def prune_plans(specs: list[PlanSpec], *, changes: Changes) -> None:
    """Plans the file does not declare: deleted, or deactivated when organizations were ever on them (history)."""
    keep = {spec.slug for spec in specs}
    for plan in Plan.objects.exclude(slug__in=keep).order_by("slug"):
        changes.plans.add(plan.slug)
        if plan.subscriptions.exists():
            if plan.active or plan.is_default:
                changes.delete("plan", plan.slug, "deactivated: organizations have been on it")
                plan.active, plan.is_default = False, False
                plan.save(update_fields=["active", "is_default"])
            continue
        plan.delete()
        changes.delete("plan", plan.slug)


def check_default(reader: Reader, path: Path) -> None:
    defaults = list(Plan.objects.filter(is_default=True, active=True).values_list("slug", flat=True))
    if len(defaults) != 1:
        reader.problem(path, "exactly one active plan must be the default: mark one plan 'default: true'")


def export_plans() -> list[dict[str, Any]]:
    plans = []
    for plan in Plan.objects.select_related("degrade_to", "upgrade_to").prefetch_related("entitled_models"):
        entry: dict[str, Any] = {"slug": plan.slug, "name": plan.name}
        if plan.is_default:
            entry["default"] = True
        entry["key_rate_limit"] = {"requests": plan.key_rate_requests, "window_seconds": plan.key_rate_window_seconds}
        entry["allowances"] = [
            {"name": "short", "requests": plan.short_requests, "window_seconds": plan.short_window_seconds},
            {"name": "weekly", "requests": plan.weekly_requests, "window_seconds": plan.weekly_window_seconds},
        ]
        aliases = sorted(plan.entitled_models.all(), key=lambda alias: alias.pk)
        entry["models"] = [ALL_MODELS] if plan.all_models else [alias.alias for alias in aliases]
        entry["over_limit"] = plan.over_limit
        if plan.degrade_to is not None:
            entry["degrade_to"] = plan.degrade_to.alias
        for key in ("price_text", "description"):
            if getattr(plan, key):
                entry[key] = getattr(plan, key)
        if plan.upgrade_to is not None:
            entry["upgrade_to"] = plan.upgrade_to.slug
        if plan.sort_order:
            entry["sort_order"] = plan.sort_order
        if not plan.active:
            entry["active"] = False
        plans.append(entry)
    return plans
