"""Reading and checking request bodies: size limit, JSON, and the OpenAI request shapes we accept.

Checks are those OpenAI's API makes for the same request, with a `param` naming the field to fix. Fields we do not
check pass through to the backend untouched (OpenAI clients send many optional ones).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

Receive = Callable[[], Awaitable[dict[str, Any]]]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_TOKENS_CAP = 1_000_000
# A model alias is at most this long (routing.models.ModelAlias.alias), and so is the ledger's model column: a longer
# name can name no model, and its refusal must still fit the request log.
MODEL_MAX_LENGTH = 80


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


@dataclass(frozen=True)
class BodyProblem:
    message: str
    param: str | None = None


async def read_body(receive: Receive, limit: int, declared_length: int | None) -> bytes:
    if declared_length is not None and declared_length > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any] | BodyProblem:
    if not body.strip():
        return BodyProblem("The request body is empty; send a JSON object.")
    try:
        data = orjson.loads(body)
    except ValueError:  # orjson's JSONDecodeError, invalid UTF-8 included
        return BodyProblem("The request body is not valid JSON.")
    if not isinstance(data, dict):
        return BodyProblem("The request body must be a JSON object.")
    return data


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _common(data: dict[str, Any]) -> BodyProblem | None:
    model = data.get("model")
    if model is None:
        return BodyProblem("You must provide a model parameter.", "model")
    if not isinstance(model, str) or not model:
        return BodyProblem("'model' must be a model name such as 'gpt-oss-20b'.", "model")
    if len(model) > MODEL_MAX_LENGTH:
        return BodyProblem(
            f"'model' is longer than {MODEL_MAX_LENGTH} characters, so no model has that name; "
            "GET /v1/models lists yours.",
            "model",
        )
    if not model.isprintable():
        # NUL and other control or invisible characters: no alias holds them, and PostgreSQL cannot store NUL.
        return BodyProblem(
            "'model' holds a control or invisible character; send the name as GET /v1/models gives it.", "model"
        )
    stream = data.get("stream", False)
    if stream is not None and not isinstance(stream, bool):
        return BodyProblem("'stream' must be true or false.", "stream")
    options = data.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            return BodyProblem("'stream_options' must be an object.", "stream_options")
        if not stream:
            return BodyProblem("'stream_options' is only allowed when 'stream' is true.", "stream_options")
        if not isinstance(options.get("include_usage", False), bool):
            return BodyProblem("'stream_options.include_usage' must be true or false.", "stream_options")
    for name in ("max_tokens", "max_completion_tokens"):
        value = data.get(name)
        if value is not None and (not _is_int(value) or not 1 <= value <= MAX_TOKENS_CAP):
            return BodyProblem(f"'{name}' must be a whole number of at least 1.", name)
    temperature = data.get("temperature")
    if temperature is not None and (not _is_number(temperature) or not 0 <= temperature <= 2):
        return BodyProblem("'temperature' must be a number from 0 to 2.", "temperature")
    top_p = data.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0 <= top_p <= 1):
        return BodyProblem("'top_p' must be a number from 0 to 1.", "top_p")
    n = data.get("n")
    if n is not None and (not _is_int(n) or n != 1):  # true and 1.0 equal 1 in Python, but are not the integer 1
        return BodyProblem("'n' must be the integer 1: one choice per request is supported.", "n")
    return None


def check_chat(data: dict[str, Any]) -> BodyProblem | None:
    problem = _common(data)
    if problem is not None:
        return problem
    messages = data.get("messages")
    if messages is None:
        return BodyProblem("You must provide a messages parameter.", "messages")
    if not isinstance(messages, list) or not messages:
        return BodyProblem("'messages' must be a non-empty list of messages.", "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return BodyProblem(f"'{where}' must be an object with 'role' and 'content'.", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            return BodyProblem(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}.", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            return BodyProblem(f"'{where}.content' must be text or a list of content parts.", f"{where}.content")
    return None


def check_completion(data: dict[str, Any]) -> BodyProblem | None:
    problem = _common(data)
    if problem is not None:
        return problem
    prompt = data.get("prompt")
    if prompt is None:
        return BodyProblem("You must provide a prompt parameter.", "prompt")
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(item, str) for item in prompt):
            return BodyProblem("'prompt' must be text or a non-empty list of texts.", "prompt")
        if len(prompt) > 1:
            return BodyProblem("Only one prompt per request is supported.", "prompt")
        prompt = prompt[0]
    elif not isinstance(prompt, str):
        return BodyProblem("'prompt' must be text.", "prompt")
    if not prompt:
        # Checked here, before admission: no backend completes an empty prompt, and a refusal is never billed.
        return BodyProblem("'prompt' is empty; send the text to complete.", "prompt")
    return None
