"""The sandbox router over real HTTP: both faces, streaming, auth, and fault injection."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from routing.sandbox import completion_words
from tests.conftest import Sandbox

pytestmark = pytest.mark.slow


def sse_events(response: httpx.Response) -> list[object]:
    events: list[object] = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line.removeprefix("data: ")
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def test_cortensor_completion_streams_sse_with_usage_on_the_last_chunk(sandbox: Sandbox) -> None:
    body = {"prompt": "hi", "stream": True, "max_tokens": 5, "client_reference": "req_abc"}
    with httpx.stream("POST", f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if isinstance(e, dict)]
    text = "".join(chunk["choices"][0]["text"] for chunk in chunks)
    assert text == " ".join(completion_words("hi", 5))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}
    assert sandbox.stats()["last_client_reference"] == "req_abc"


def test_cortensor_completion_takes_the_session_in_the_body(sandbox: Sandbox) -> None:
    body = {"prompt": "hello there", "session_id": 7, "max_tokens": 3}
    response = httpx.post(f"{sandbox.url}/api/v1/completions", json=body, headers=sandbox.auth)
    assert response.status_code == 200
    answer = response.json()
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"] == " ".join(completion_words("hello there", 3))
    assert answer["usage"]["prompt_tokens"] == 2


def test_output_is_deterministic_for_the_same_prompt(sandbox: Sandbox) -> None:
    body = {"prompt": "same prompt", "max_tokens": 8}
    first = httpx.post(f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth).json()
    second = httpx.post(f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth).json()
    assert first["choices"][0]["text"] == second["choices"][0]["text"]


@pytest.mark.parametrize("header", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_a_wrong_router_key_gets_401(sandbox: Sandbox, header: dict[str, str]) -> None:
    response = httpx.post(f"{sandbox.url}/api/v1/completions/1", json={"prompt": "hi"}, headers=header)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_router_key"


def test_ping_and_status_answer_without_a_key(sandbox: Sandbox) -> None:
    assert httpx.get(f"{sandbox.url}/api/v1/ping").json()["status"] == "ok"
    status = httpx.get(f"{sandbox.url}/api/v1/status").json()
    assert status["status"] == "ok"
    assert "gpt-oss-20b" in status["models"]


def test_bad_requests_are_refused_with_a_reason(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/api/v1/completions/1"
    assert httpx.post(url, content=b"{not json", headers=sandbox.auth).status_code == 400
    missing = httpx.post(url, json={"max_tokens": 3}, headers=sandbox.auth)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "invalid_prompt"
    no_session = httpx.post(f"{sandbox.url}/api/v1/completions", json={"prompt": "x"}, headers=sandbox.auth)
    assert no_session.json()["error"]["code"] == "missing_session"


def test_openai_chat_completion(sandbox: Sandbox) -> None:
    body = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    answer = httpx.post(f"{sandbox.url}/v1/chat/completions", json=body, headers=sandbox.auth).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert len(answer["choices"][0]["message"]["content"].split()) == 4
    assert answer["usage"]["completion_tokens"] == 4


def test_openai_chat_stream_sends_a_usage_chunk_only_when_asked(sandbox: Sandbox) -> None:
    body = {
        "model": "gpt-oss-20b",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": True,
    }
    with httpx.stream("POST", f"{sandbox.url}/v1/chat/completions", json=body, headers=sandbox.auth) as response:
        plain = sse_events(response)
    assert not any(isinstance(e, dict) and "usage" in e for e in plain)
    body["stream_options"] = {"include_usage": True}
    with httpx.stream("POST", f"{sandbox.url}/v1/chat/completions", json=body, headers=sandbox.auth) as response:
        with_usage = sse_events(response)
    usage_chunk = with_usage[-2]
    assert isinstance(usage_chunk, dict)
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 3
    deltas = [e["choices"][0]["delta"].get("content", "") for e in with_usage if isinstance(e, dict) and e["choices"]]
    assert "".join(deltas).split() == completion_words("user: hi", 3)


def test_openai_text_completion_and_models(sandbox: Sandbox) -> None:
    body = {"model": "gemma-4-26b", "prompt": "once upon", "max_tokens": 2}
    answer = httpx.post(f"{sandbox.url}/v1/completions", json=body, headers=sandbox.auth).json()
    assert answer["object"] == "text_completion"
    models = httpx.get(f"{sandbox.url}/v1/models", headers=sandbox.auth).json()
    assert [m["id"] for m in models["data"]] == ["gpt-oss-20b", "gemma-4-26b"]
    unknown = httpx.post(f"{sandbox.url}/v1/completions", json={**body, "model": "nope"}, headers=sandbox.auth)
    assert unknown.status_code == 404


def test_injected_errors_use_the_configured_status(sandbox: Sandbox) -> None:
    sandbox.configure(error_rate=1.0, error_status=503)
    response = httpx.post(f"{sandbox.url}/api/v1/completions/1", json={"prompt": "x"}, headers=sandbox.auth)
    assert response.status_code == 503
    assert sandbox.stats()["errors_injected"] == 1


def test_latency_is_added_before_the_response(sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=300)
    started = time.monotonic()
    httpx.post(f"{sandbox.url}/api/v1/completions/1", json={"prompt": "x"}, headers=sandbox.auth)
    assert time.monotonic() - started >= 0.3


def test_a_hanging_router_never_answers(sandbox: Sandbox) -> None:
    sandbox.configure(hang=True)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.url}/api/v1/completions/1", json={"prompt": "x"}, headers=sandbox.auth, timeout=0.5)


def test_a_stream_can_fail_midway_with_an_error_event(sandbox: Sandbox) -> None:
    sandbox.configure(fail_after_tokens=2)
    body = {"prompt": "x", "stream": True, "max_tokens": 6}
    with httpx.stream("POST", f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth) as response:
        events = sse_events(response)
    assert len(events) == 3
    assert isinstance(events[-1], dict) and events[-1]["error"]["code"] == "sandbox_injected_failure"


def test_a_stream_can_be_cut_midway(sandbox: Sandbox) -> None:
    sandbox.configure(fail_after_tokens=1, fail_mode="drop")
    body = {"prompt": "x", "stream": True, "max_tokens": 6}
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth) as r,
    ):
        sse_events(r)


def test_a_client_that_leaves_mid_stream_is_counted_as_cancelled(sandbox: Sandbox) -> None:
    sandbox.configure(token_delay_ms=50)
    body = {"prompt": "x", "stream": True, "max_tokens": 40}
    with httpx.stream("POST", f"{sandbox.url}/api/v1/completions/1", json=body, headers=sandbox.auth) as response:
        next(response.iter_lines())
    deadline = time.monotonic() + 5
    while sandbox.stats()["streams_cancelled"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sandbox.stats()["streams_cancelled"] == 1


def test_config_changes_are_validated(sandbox: Sandbox) -> None:
    response = httpx.post(f"{sandbox.url}/_sandbox/config", json={"error_rate": 2}, headers=sandbox.auth)
    assert response.status_code == 400
    response = httpx.post(f"{sandbox.url}/_sandbox/config", json={"explode": True}, headers=sandbox.auth)
    assert response.status_code == 400
    assert httpx.get(f"{sandbox.url}/_sandbox/config").status_code == 401
