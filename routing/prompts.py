"""Flattening chat messages into one prompt for upstreams that only take text (Cortensor router nodes).

A template is the text of ONE message with the placeholders `{role}` and `{content}`; the prompt is every message
rendered with it, followed by the template's part before `{content}` rendered for the assistant, which is where the
model starts writing. The default gives `user: hello\\nassistant:`; a ChatML model would use
`<|im_start|>{role}\\n{content}<|im_end|>\\n`. Placeholders are replaced literally (no str.format), so braces in
messages or templates are safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_PROMPT_TEMPLATE = "{role}: {content}\n"
CONTENT = "{content}"
ROLE = "{role}"


def template_problem(template: str) -> str | None:
    """Why a template cannot be used, or None when it can."""
    if template.count(CONTENT) != 1:
        return "must contain {content} exactly once"
    return None


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type", "text") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                texts.append(part)
        return "".join(texts)
    return str(content)


def flatten_messages(messages: Iterable[Mapping[str, Any]], template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    before, _, after = template.partition(CONTENT)
    parts = []
    for message in messages:
        role = str(message.get("role") or "user")
        parts.append(before.replace(ROLE, role) + message_text(message.get("content")) + after.replace(ROLE, role))
    # Where the assistant starts writing; trailing blanks are left out so the model's first token carries its own.
    parts.append(before.replace(ROLE, "assistant").rstrip(" "))
    return "".join(parts)
