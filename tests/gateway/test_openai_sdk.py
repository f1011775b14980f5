"""The official OpenAI Python SDK against the gateway: calls work, and our errors become the SDK's exceptions."""

from __future__ import annotations

import openai
import pytest

from apikeys.keyformat import generate_key
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog, ServerThread, reset_gateway_caches

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(gateway_server: ServerThread, catalog: Catalog) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_server.url}/v1", api_key=catalog.secret, max_retries=0, timeout=20)


def test_chat_completion(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="gpt-oss-20b", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    assert reply.model == "gpt-oss-20b"
    assert len(reply.choices[0].message.content.split()) == 5  # type: ignore[union-attr]
    assert reply.usage is not None and reply.usage.completion_tokens == 5


def test_text_completion(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-oss-20b", prompt="Once upon a time", max_tokens=3)
    assert reply.object == "text_completion"
    assert len(reply.choices[0].text.split()) == 3


def test_streaming_chat_with_and_without_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-20b", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 6
    assert all(c.usage is None for c in chunks)  # the usage chunk we asked upstream for is not passed on
    chunks = list(
        client.chat.completions.create(
            model="gpt-oss-20b",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_streaming_text_completion(client: openai.OpenAI) -> None:
    chunks = list(client.completions.create(model="gpt-oss-20b", prompt="Hello", max_tokens=4, stream=True))
    assert len("".join(c.choices[0].text for c in chunks if c.choices).split()) == 4


def test_models_list(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["gpt-oss-20b"]


def test_exceptions_map_to_the_sdk_classes(
    client: openai.OpenAI, gateway_server: ServerThread, catalog: Catalog, sandbox: Sandbox
) -> None:
    stranger = openai.OpenAI(base_url=f"{gateway_server.url}/v1", api_key=generate_key(), max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        stranger.models.list()
    assert auth.value.code == "invalid_api_key"

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])

    from routing.models import ModelAlias

    ModelAlias.objects.create(alias="gemma-4-26b", pool=catalog.pool, family="gemma", weight=2)
    reset_gateway_caches()
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gemma-4-26b", messages=[{"role": "user", "content": "x"}])

    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="gpt-oss-20b", messages=[])
    assert bad.value.param == "messages"

    sandbox.configure(error_rate=1.0, error_status=500)
    with pytest.raises(openai.APIStatusError) as backend:
        client.chat.completions.create(model="gpt-oss-20b", messages=[{"role": "user", "content": "x"}])
    assert backend.value.status_code == 502
    sandbox.configure(error_rate=0.0)

    catalog.plan.key_rate_requests = 1
    catalog.plan.save()
    reset_gateway_caches()
    client.chat.completions.create(model="gpt-oss-20b", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="gpt-oss-20b", messages=[{"role": "user", "content": "x"}])
    assert limited.value.code == "rate_limit_exceeded"
    assert int(limited.value.response.headers["retry-after"]) >= 1
