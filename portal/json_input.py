"""JSON request bodies read with limits: what Python's `json` accepts but this product cannot take is refused with
the path of the value at fault (`metadata.team`, `allowed_models[2]`), before any view or serializer sees it.

- Nesting deeper than MAX_DEPTH. Python's parser recurses: a body nested some thousands deep raises RecursionError
  (a server error), and no body of ours is more than three levels deep.
- NUL (`\\u0000`) and lone surrogates (`\\ud800`) in any string, keys included. PostgreSQL's text and jsonb cannot
  hold NUL, UTF-8 cannot encode a lone surrogate; either fails at save or when the answer is rendered.
- Numbers longer than MAX_NUMBER_CHARS, or that overflow to infinity, and NaN/Infinity (not JSON).

Used by the management API's parser (portal/parsers.py) and by the Sign-In with Ethereum endpoints.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
# No field of ours holds more than a 64-bit integer; a number of thousands of digits costs CPU to convert.
MAX_NUMBER_CHARS = 100
MAX_KEY_CHARS_IN_PATH = 64

_BAD_CHARACTER = re.compile("[\x00\ud800-\udfff]")
# Strings and brackets, for finding the path of an over-deep value without recursing (_too_deep below). A JSON
# string cannot hold an unescaped quote, so this finds the same strings the parser does.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


class JsonInputError(Exception):
    """A body that is JSON but cannot be accepted; `path` names the value at fault ("" for the whole body)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or 'body'}: {message}")
        self.path = path
        self.message = message


class _Refused:
    """What a number hook returns for a number the walk then refuses, so the error can name its path."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _integer(text: str) -> int | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"A number may have at most {MAX_NUMBER_CHARS} characters; this one has {len(text)}.")
    return int(text)


def _float(text: str) -> float | _Refused:
    if len(text) > MAX_NUMBER_CHARS:
        return _Refused(f"A number may have at most {MAX_NUMBER_CHARS} characters; this one has {len(text)}.")
    value = float(text)
    if not math.isfinite(value):
        return _Refused("This number is out of range.")
    return value


def _constant(text: str) -> _Refused:
    return _Refused(f"{text} is not a JSON number.")


def parse_json(text: str) -> Any:
    """The document in `text`. ValueError when it is not JSON (as json.loads), JsonInputError when it is JSON this
    product refuses."""
    if text.count("[") + text.count("{") > MAX_DEPTH:  # cheap: only a body with that many brackets is scanned
        deep = _too_deep(text)
        if deep is not None:
            raise JsonInputError(deep, f"Nested deeper than {MAX_DEPTH} levels.")
    try:
        document = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except RecursionError:  # not reached after the scan above; kept so no body can ever be a server error
        raise JsonInputError("", f"Nested deeper than {MAX_DEPTH} levels.") from None
    _check(document, [])
    return document


def _check(value: Any, path: list[str | int]) -> None:
    """Strings, keys and refused numbers; the depth is bounded already (parse_json scanned it first)."""
    if isinstance(value, str):
        _check_text(value, path, "a string")
    elif isinstance(value, dict):
        for key, item in value.items():
            path.append(key)
            _check_text(key, path, "a key")
            _check(item, path)
            path.pop()
    elif isinstance(value, list):
        for index, item in enumerate(value):
            path.append(index)
            _check(item, path)
            path.pop()
    elif isinstance(value, _Refused):
        raise JsonInputError(render_path(path), value.message)


def _check_text(text: str, path: list[str | int], what: str) -> None:
    found = _BAD_CHARACTER.search(text)
    if found is None:
        return
    char = found.group()
    if char == "\x00":
        message = f"The NUL character (\\u0000) is not allowed in {what}."
    else:
        message = (
            f"A lone surrogate (\\u{ord(char):04x}) is not allowed in {what}: send the character itself, "
            "or both halves of its surrogate pair."
        )
    raise JsonInputError(render_path(path), message)


def render_path(path: list[str | int]) -> str:
    """`metadata.team`, `allowed_models[2]`; a key's NUL or surrogate shown as its `\\u` escape, a long key cut,
    the empty key as `""`."""
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
            continue
        key = _BAD_CHARACTER.sub(lambda match: f"\\u{ord(match.group()):04x}", step) or '""'  # the key ""
        if len(key) > MAX_KEY_CHARS_IN_PATH:
            key = key[:MAX_KEY_CHARS_IN_PATH] + "…"
        parts.append(f".{key}" if parts else key)
    return "".join(parts)


def _too_deep(text: str) -> str | None:
    """The path of the first container nested deeper than MAX_DEPTH in `text`, or None; iterative, so it works
    where the parser would recurse too far. Text that is not JSON may give a wrong path or None: the parser then
    refuses it."""
    stack: list[list[Any]] = []  # per open container: [is_object, current key or index]
    last_string = ""
    for match in _TOKEN.finditer(text):
        lexeme = match.group()
        if lexeme in ("{", "["):
            if len(stack) >= MAX_DEPTH:
                return render_path([entry[1] for entry in stack])
            stack.append([lexeme == "{", "" if lexeme == "{" else 0])
        elif lexeme in ("}", "]"):
            if stack:
                stack.pop()
        elif lexeme == ":":
            if stack and stack[-1][0]:
                stack[-1][1] = _key(last_string)
        elif lexeme == ",":
            if stack and not stack[-1][0]:
                stack[-1][1] += 1
        else:
            last_string = lexeme  # decoded only if a ":" makes it a key
    return None


def _key(lexeme: str) -> str:
    try:
        return str(json.loads(lexeme))
    except ValueError:
        return lexeme[1:-1]
