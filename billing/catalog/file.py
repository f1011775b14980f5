"""Reading a catalog file: YAML or JSON into plain values that remember where they were written, strict field
readers that collect every problem with its place (file line for YAML, JSON path for JSON), and the file's sections
read into specs entry by entry (what references name is checked when applying, against the database).

What each section's entries mean lives beside its models: billing/catalog_section.py (plans) and
routing/catalog_section.py (pools and models).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from billing.catalog_section import PlanSpec, parse_plans
from routing.catalog_section import AliasSpec, Path, PoolSpec, parse_models, parse_pools

SECTIONS = ("plans", "pools", "models")


class CatalogError(Exception):
    """A catalog file that cannot be applied; `problems` are one line each, naming where."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


@dataclass
class Document:
    data: Any
    source: str
    lines: dict[Path, int] | None = None  # YAML: where each key or list item was written; JSON: None

    def line(self, path: Path) -> int:
        """The line a path was written on (its nearest written ancestor's); 0 for JSON."""
        for end in range(len(path), -1, -1):
            line = (self.lines or {}).get(path[:end])
            if line is not None:
                return line
        return 0

    def where(self, path: Path) -> str:
        if self.lines is None:
            return f"{self.source} at {'$.' + dotted(path) if path else '$'}"
        return f"{self.source}, line {self.line(path)}" + (f" ({dotted(path)})" if path else "")


def load_document(text: str, *, source: str, json_format: bool | None = None) -> Document:
    """Parse a catalog file. JSON when asked, or when the text starts with `{`; YAML otherwise."""
    if json_format is None:
        json_format = text.lstrip().startswith("{")
    if json_format:
        try:
            return Document(json.loads(text), source)
        except json.JSONDecodeError as error:
            raise CatalogError([f"{source}, line {error.lineno}: not valid JSON: {error.msg}"]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise CatalogError([f"{source}{line}: not valid YAML: {error.problem or error}"]) from None
    except yaml.YAMLError as error:
        raise CatalogError([f"{source}: not valid YAML: {error}"]) from None
    lines: dict[Path, int] = {(): 1}
    problems: list[str] = []
    data = _from_node(node, (), lines, problems, source) if node is not None else None
    if problems:
        raise CatalogError(problems)
    return Document(data, source, lines)


_constructor = yaml.SafeLoader("")


def _from_node(node: yaml.Node, path: Path, lines: dict[Path, int], problems: list[str], source: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _constructor.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                problems.append(f"{source}, line {line}: keys must be names, not {key!r}")
                continue
            if key in result:
                problems.append(f"{source}, line {line}: '{key}' is given twice in the same entry")
                continue
            lines[(*path, key)] = line
            result[key] = _from_node(value_node, (*path, key), lines, problems, source)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            items.append(_from_node(item, (*path, index), lines, problems, source))
        return items
    return _constructor.construct_object(node, deep=True)


class Reader:
    """Strict readers for catalog values. Each records a problem and returns None when the value is wrong."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self._problems: list[tuple[int, str]] = []

    @property
    def problems(self) -> list[str]:
        """Every problem so far, top of the file first."""
        return [text for _, text in sorted(self._problems, key=lambda problem: problem[0])]

    def problem(self, path: Path, message: str) -> None:
        self._problems.append((self.document.line(path), f"{self.document.where(path)}: {message}"))

    def raise_if_any(self) -> None:
        if self._problems:
            raise CatalogError(self.problems)

    def save_checked(self, obj: Any, *, path: Path, labels: Mapping[str, str]) -> bool:
        """Validate a row with the model's own rules (as the admin does) and save it; problems point at `path`."""
        try:
            obj.full_clean()
        except ValidationError as error:
            for field_name, messages in error.message_dict.items():
                for message in messages:
                    if field_name == NON_FIELD_ERRORS:
                        self.problem(path, message)
                    else:
                        self.problem(path, f"{labels.get(field_name, field_name)}: {message}")
            return False
        obj.save()
        return True

    def entry(
        self, path: Path, value: Any, *, required: Collection[str], optional: Collection[str] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(path, f"must be a mapping with {', '.join(required)}")
            return None
        for key in value:
            if key not in required and key not in optional:
                known = ", ".join([*required, *optional])
                self.problem((*path, key), f"unknown key '{key}' (known: {known})")
        ok = True  # unknown keys are reported, and the rest is still read so every problem shows at once
        for key in required:
            if key not in value:
                self.problem(path, f"'{key}' is required")
                ok = False
        return dict(value) if ok else None

    def items(self, path: Path, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, "must be a list")
            return []
        return value

    def text(
        self, path: Path, value: Any, *, pattern: str | None = None, max_length: int = 300, blank: bool = False
    ) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.problem(path, f"must be text, got {_show(value)}")
            return None
        text = str(value)
        if not text and not blank:
            self.problem(path, "must not be empty")
            return None
        if len(text) > max_length:
            self.problem(path, f"must be at most {max_length} characters")
            return None
        if pattern is not None and text and re.fullmatch(pattern, text) is None:
            self.problem(path, f"{text!r} is not allowed here (expected {pattern})")
            return None
        return text

    def number(self, path: Path, value: Any, *, minimum: int = 1, maximum: int = 2**31 - 1) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(path, f"must be a whole number, got {_show(value)}")
            return None
        if not minimum <= value <= maximum:
            self.problem(path, f"must be from {minimum} to {maximum}, got {value}")
            return None
        return value

    def flag(self, path: Path, value: Any) -> bool | None:
        if not isinstance(value, bool):
            self.problem(path, f"must be true or false, got {_show(value)}")
            return None
        return value

    def choice(self, path: Path, value: Any, choices: Collection[str]) -> str | None:
        if value not in choices:
            self.problem(path, f"must be one of {', '.join(choices)}, got {_show(value)}")
            return None
        return str(value)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"[:80]


PARSERS: dict[str, Callable[[Reader, Any], Any]] = {"plans": parse_plans, "pools": parse_pools, "models": parse_models}


@dataclass
class Catalog:
    """A catalog file read entry by entry; `reader` holds its problems so far (none raised yet)."""

    reader: Reader
    sections: set[str]  # the sections the file has
    plans: list[PlanSpec]
    pools: list[PoolSpec]
    models: list[AliasSpec]


def read_catalog(document: Document) -> Catalog:
    """Check the file's shape and values; problems are collected, and raised by the apply with its own."""
    reader = Reader(document)
    data = document.data
    if not isinstance(data, dict):
        raise CatalogError([f"{document.where(())}: a catalog is a mapping with {', '.join(SECTIONS)}"])
    reader.entry((), data, required=(), optional=SECTIONS)
    parsed: dict[str, Any] = {}
    for section in data:  # in the file's order, so problems are listed top to bottom
        if section in PARSERS:
            parsed[section] = PARSERS[section](reader, data[section])
    return Catalog(
        reader=reader,
        sections=set(parsed),
        plans=parsed.get("plans", []),
        pools=parsed.get("pools", []),
        models=parsed.get("models", []),
    )
