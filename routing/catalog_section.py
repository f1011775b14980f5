"""The `pools:` and `models:` sections of the catalog file (format: docs/catalog.md; the file is billing/catalog/).

Parsing checks shape and values and reports every problem with its place; applying makes the rows match, recording
each change; exporting prints the rows back in the file's format. Operational state (draining, probe results) is
not part of the catalog and is never touched here.

Routing sits below billing, which owns the file, so the sections are written against the two protocols below rather
than billing's reader and change list (billing's plans section uses them too).
"""

from __future__ import annotations

import typing  # typing.Protocol: routing.models has a Protocol of its own (cortensor | openai)
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db.models import ProtectedError

from routing.models import ALIAS_RE, ENV_NAME_RE, ModelAlias, Protocol, RouterPool, RouterTarget, base_url_problem
from routing.prompts import DEFAULT_PROMPT_TEMPLATE, template_problem

SLUG_RE = r"[-a-zA-Z0-9_]+"
TARGET_LABELS = {"base_url": "url"}

Path = tuple[str | int, ...]  # where a value sits in the file: ("pools", 0, "targets", 1, "url")


class Reader(typing.Protocol):
    """Strict readers for the file's values (billing.catalog.file.Reader): each records a problem at `path` and
    returns None when the value is wrong."""

    def problem(self, path: Path, message: str) -> None: ...

    def entry(
        self, path: Path, value: Any, *, required: Collection[str], optional: Collection[str] = ...
    ) -> dict[str, Any] | None: ...

    def items(self, path: Path, value: Any) -> list[Any]: ...

    def text(
        self, path: Path, value: Any, *, pattern: str | None = ..., max_length: int = ..., blank: bool = ...
    ) -> str | None: ...

    def number(self, path: Path, value: Any, *, minimum: int = ..., maximum: int = ...) -> int | None: ...

    def flag(self, path: Path, value: Any) -> bool | None: ...

    def choice(self, path: Path, value: Any, choices: Collection[str]) -> str | None: ...

    def save_checked(self, obj: Any, *, path: Path, labels: Mapping[str, str]) -> bool:
        """Validate a row with the model's own rules and save it; its problems are recorded at `path`."""
        ...


class Changes(typing.Protocol):
    """What an apply did (billing.catalog.apply.Changes), one line per change."""

    routing: bool  # pools, targets or aliases changed
    plans: set[str]  # slugs of plans that changed

    def create(self, kind: str, name: str) -> None: ...

    def update(self, kind: str, name: str, key: str, old: Any, new: Any) -> None: ...

    def delete(self, kind: str, name: str, note: str = ...) -> None: ...

    def sync_fields(
        self, obj: Any, values: Mapping[str, Any], *, kind: str, name: str, labels: Mapping[str, str]
    ) -> bool:
        """Set the fields of a row that differ from `values`, recording each change. True if any did."""
        ...


@dataclass
class TargetSpec:
    path: Path
    name: str
    values: dict[str, Any]


@dataclass
class PoolSpec:
    path: Path
    slug: str
    values: dict[str, Any]
    targets: list[TargetSpec] = field(default_factory=list)


@dataclass
class AliasSpec:
    path: Path
    alias: str
    pool: str
    values: dict[str, Any]


# -- parsing ------------------------------------------------------------------------------------------------------


def parse_pools(reader: Reader, value: Any, path: Path = ("pools",)) -> list[PoolSpec]:
    specs: list[PoolSpec] = []
    seen: set[str] = set()
    for index, item in enumerate(reader.items(path, value)):
        here = (*path, index)
        entry = reader.entry(here, item, required=("slug",), optional=("name", "enabled", "targets"))
        if entry is None:
            continue
        slug = reader.text((*here, "slug"), entry["slug"], pattern=SLUG_RE, max_length=60)
        name = reader.text((*here, "name"), entry.get("name", ""), max_length=100, blank=True)
        enabled = reader.flag((*here, "enabled"), entry.get("enabled", True))
        targets = _parse_targets(reader, entry.get("targets"), (*here, "targets"))
        if slug is not None and slug in seen:
            reader.problem((*here, "slug"), f"pool '{slug}' is declared twice")
        if slug is None or name is None or enabled is None:
            continue
        seen.add(slug)
        specs.append(PoolSpec(here, slug, {"name": name, "enabled": enabled}, targets))
    return specs


def _parse_targets(reader: Reader, value: Any, path: Path) -> list[TargetSpec]:
    specs: list[TargetSpec] = []
    seen: set[str] = set()
    optional = ("session_id", "api_key_env", "weight", "enabled")
    for index, item in enumerate(reader.items(path, value)):
        here = (*path, index)
        entry = reader.entry(here, item, required=("name", "url", "protocol"), optional=optional)
        if entry is None:
            continue
        name = reader.text((*here, "name"), entry["name"], max_length=60)
        url = reader.text((*here, "url"), entry["url"])
        if url is not None and (problem := base_url_problem(url)):
            reader.problem((*here, "url"), problem)
        protocol = reader.choice((*here, "protocol"), entry["protocol"], Protocol.values)
        session = entry.get("session_id")
        session_id = reader.number((*here, "session_id"), session, minimum=0) if session is not None else None
        key_env = reader.text((*here, "api_key_env"), entry.get("api_key_env", ""), pattern=ENV_NAME_RE, blank=True)
        weight = reader.number((*here, "weight"), entry.get("weight", 1), minimum=1, maximum=1000)
        enabled = reader.flag((*here, "enabled"), entry.get("enabled", True))
        if protocol == Protocol.CORTENSOR and session is None:
            reader.problem(here, "a cortensor target needs 'session_id' (the Cortensor session it runs requests in)")
        if protocol == Protocol.CORTENSOR and "api_key_env" not in entry:
            reader.problem(here, "a cortensor target needs 'api_key_env' (the variable holding its router key)")
        if protocol == Protocol.OPENAI and session is not None:
            reader.problem((*here, "session_id"), "only cortensor targets have a session id")
        if name is not None and name in seen:
            reader.problem((*here, "name"), f"target '{name}' is declared twice in this pool")
        if name is None or url is None or protocol is None or key_env is None or weight is None or enabled is None:
            continue
        seen.add(name)
        values = {
            "base_url": url,
            "protocol": protocol,
            "session_id": session_id,
            "api_key_env": key_env,
            "weight": weight,
            "enabled": enabled,
        }
        specs.append(TargetSpec(here, name, values))
    return specs


def parse_models(reader: Reader, value: Any, path: Path = ("models",)) -> list[AliasSpec]:
    specs: list[AliasSpec] = []
    seen: set[str] = set()
    optional = ("family", "weight", "upstream_model", "description", "prompt_template", "enabled")
    for index, item in enumerate(reader.items(path, value)):
        here = (*path, index)
        entry = reader.entry(here, item, required=("alias", "pool"), optional=optional)
        if entry is None:
            continue
        alias = reader.text((*here, "alias"), entry["alias"], pattern=ALIAS_RE, max_length=80)
        pool = reader.text((*here, "pool"), entry["pool"], max_length=60)
        values = {
            "family": reader.text((*here, "family"), entry.get("family", ""), max_length=40, blank=True),
            "weight": reader.number((*here, "weight"), entry.get("weight", 1), minimum=1, maximum=1000),
            "upstream_model": reader.text((*here, "upstream_model"), entry.get("upstream_model", ""), blank=True),
            "description": reader.text((*here, "description"), entry.get("description", ""), blank=True),
            "prompt_template": reader.text(
                (*here, "prompt_template"), entry.get("prompt_template", DEFAULT_PROMPT_TEMPLATE), max_length=4000
            ),
            "enabled": reader.flag((*here, "enabled"), entry.get("enabled", True)),
        }
        template = values["prompt_template"]
        if isinstance(template, str) and (problem := template_problem(template)):
            reader.problem((*here, "prompt_template"), problem)
        if alias is not None and alias in seen:
            reader.problem((*here, "alias"), f"model '{alias}' is declared twice")
        if alias is None or pool is None or any(v is None for v in values.values()):
            continue
        seen.add(alias)
        specs.append(AliasSpec(here, alias, pool, values))
    return specs


# -- applying -----------------------------------------------------------------------------------------------------


def apply_pools(specs: list[PoolSpec], *, reader: Reader, changes: Changes) -> None:
    existing = {pool.slug: pool for pool in RouterPool.objects.all()}
    for spec in specs:
        pool = existing.get(spec.slug)
        if pool is None:
            pool = RouterPool(slug=spec.slug, **spec.values)
            changes.create("pool", spec.slug)
        elif not changes.sync_fields(pool, spec.values, kind="pool", name=spec.slug, labels={}):
            _apply_targets(pool, spec, reader=reader, changes=changes)
            continue
        changes.routing = True
        if reader.save_checked(pool, path=spec.path, labels={}):
            _apply_targets(pool, spec, reader=reader, changes=changes)


def _apply_targets(pool: RouterPool, spec: PoolSpec, *, reader: Reader, changes: Changes) -> None:
    existing = {target.name: target for target in pool.targets.all()}
    for target_spec in spec.targets:
        label = f"{spec.slug}/{target_spec.name}"
        target = existing.get(target_spec.name)
        if target is None:
            target = RouterTarget(pool=pool, name=target_spec.name, **target_spec.values)
            changes.create("target", label)
        elif not changes.sync_fields(target, target_spec.values, kind="target", name=label, labels=TARGET_LABELS):
            continue
        changes.routing = True
        reader.save_checked(target, path=target_spec.path, labels=TARGET_LABELS)


def apply_models(specs: list[AliasSpec], *, reader: Reader, changes: Changes, known_pools: Collection[str]) -> None:
    """`known_pools`: the pool slugs a model may name (the file's, plus the database's unless pruning)."""
    pools = {pool.slug: pool for pool in RouterPool.objects.all()}
    existing = {alias.alias: alias for alias in ModelAlias.objects.select_related("pool")}
    for spec in specs:
        pool = pools.get(spec.pool) if spec.pool in known_pools else None
        if pool is None:
            reader.problem((*spec.path, "pool"), f"no pool '{spec.pool}' (declare it under pools:)")
            continue
        values = {"pool": pool, **spec.values}
        alias = existing.get(spec.alias)
        if alias is None:
            alias = ModelAlias(alias=spec.alias, **values)
            changes.create("model", spec.alias)
        elif not changes.sync_fields(alias, values, kind="model", name=spec.alias, labels={}):
            continue
        changes.routing = True
        reader.save_checked(alias, path=spec.path, labels={})


def prune_models(models: list[AliasSpec], *, reader: Reader, changes: Changes, path: Path = ("models",)) -> None:
    """Delete the aliases the file does not declare (`--prune` with a `models:` section)."""
    keep_aliases = {spec.alias for spec in models}
    for alias in ModelAlias.objects.exclude(alias__in=keep_aliases).order_by("alias"):
        try:
            alias.delete()
        except ProtectedError:
            plans = ", ".join(sorted(str(plan.slug) for plan in alias.degrade_plans.all()))
            reader.problem(path, f"model '{alias.alias}' cannot be pruned: plans {plans} degrade to it")
            continue
        changes.delete("model", alias.alias)
        changes.routing = True


def prune_pools(pools: list[PoolSpec], *, reader: Reader, changes: Changes, path: Path = ("pools",)) -> None:
    """Delete the pools, and the targets of declared pools, the file does not declare (`--prune` with `pools:`)."""
    keep_pools = {spec.slug: spec for spec in pools}
    for pool in RouterPool.objects.order_by("slug"):
        spec = keep_pools.get(pool.slug)
        if spec is None:
            try:
                pool.delete()
            except ProtectedError:
                reader.problem(path, f"pool '{pool.slug}' cannot be pruned: models still use it")
                continue
            changes.delete("pool", pool.slug)
            changes.routing = True
            continue
        names = {target.name for target in spec.targets}
        for target in pool.targets.exclude(name__in=names).order_by("name"):
            target.delete()
            changes.delete("target", f"{pool.slug}/{target.name}")
            changes.routing = True


# -- exporting ----------------------------------------------------------------------------------------------------


def export_pools() -> list[dict[str, Any]]:
    pools = []
    for pool in RouterPool.objects.prefetch_related("targets").order_by("id"):
        entry: dict[str, Any] = {"slug": pool.slug}
        if pool.name:
            entry["name"] = pool.name
        if not pool.enabled:
            entry["enabled"] = False
        entry["targets"] = [_export_target(target) for target in sorted(pool.targets.all(), key=lambda t: t.id)]
        pools.append(entry)
    return pools


def _export_target(target: RouterTarget) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": target.name, "url": target.base_url, "protocol": target.protocol}
    if target.session_id is not None:
        entry["session_id"] = target.session_id
    if target.api_key_env:
        entry["api_key_env"] = target.api_key_env
    entry["weight"] = target.weight
    if not target.enabled:
        entry["enabled"] = False
    return entry


def export_models() -> list[dict[str, Any]]:
    models = []
    for alias in ModelAlias.objects.select_related("pool").order_by("id"):
        entry: dict[str, Any] = {"alias": alias.alias, "pool": alias.pool.slug}
        if alias.family:
            entry["family"] = alias.family
        entry["weight"] = alias.weight
        for key in ("upstream_model", "description"):
            if getattr(alias, key):
                entry[key] = getattr(alias, key)
        if alias.prompt_template != DEFAULT_PROMPT_TEMPLATE:
            entry["prompt_template"] = alias.prompt_template
        if not alias.enabled:
            entry["enabled"] = False
        models.append(entry)
    return models
