"""Exporting the catalog: every plan, pool and model in the file's format (YAML, or JSON with the same structure).

Fields at their defaults are mostly left out, so an export is a starting point for a file, and `apply --check` of an
export says there is nothing to change.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import yaml

from billing.catalog_section import export_plans
from routing.catalog_section import export_models, export_pools

HEADER = (
    "# Cortensor Portal catalog: plans, router pools and model aliases (`manage.py catalog export`).\n"
    "# Apply with `manage.py catalog apply FILE`; router keys stay in the environment variables named here.\n"
)


def catalog_export(*, json_format: bool = False) -> str:
    sections: dict[str, Any] = {"plans": export_plans(), "pools": export_pools(), "models": export_models()}
    if json_format:
        return json.dumps(sections, indent=2) + "\n"
    return dump_yaml(sections, header=HEADER)


class _Dumper(yaml.SafeDumper):
    """Block style with indented lists, as the example file is written; short lists and maps of plain values stay on
    one line (`{requests: 20, window_seconds: 60}`, `[gpt-oss-20b, gemma-4-26b]`)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _is_leaf(values: Collection[Any]) -> bool:
    return all(value is None or isinstance(value, str | int | float | bool) for value in values)


def _represent_dict(dumper: _Dumper, data: dict[str, Any]) -> yaml.Node:
    flow = _is_leaf(data.values()) and len(json.dumps(data)) <= 72
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


def _represent_list(dumper: _Dumper, data: list[Any]) -> yaml.Node:
    flow = _is_leaf(data) and len(json.dumps(data)) <= 72
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def dump_yaml(sections: Mapping[str, Any], *, header: str = "") -> str:
    """The catalog as YAML: one block per section, separated by a blank line, keys in the order given."""
    parts = [header] if header else []
    for name, value in sections.items():
        parts.append(yaml.dump({name: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120))
    return "\n".join(parts)
