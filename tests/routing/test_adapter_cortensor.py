"""The Cortensor adapter against request/response pairs recorded from the sandbox router (recordings/record.py)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from routing.adapters import AdapterError, UpstreamError, build_upstream_request
from routing.sandbox import completion_words
from tests.routing.recorded import (
    ALIAS,
    BASE,
    KEY,
    TARGETS,
    assert_nothing_leaks,
    chunks,
    client_bytes,
    load,
    replay,
    request_for,
)

READ_SIZES = [1, 2, 3, 7, 19, 64, 1_000_000]


def test_a_chat_request_goes_to_the_session_with_the_messages_flattened_into_one_prompt() -> None:
    recording = load("cortensor_chat")
    upstream = request_for(recording)
    assert upstream.method == "POST"
    assert upstream.url == f"{BASE}/api/v1/completions/7"
    assert upstream.headers["Authorization"] == f"Bearer {KEY}"
    assert upstream.json == recording["request"]["json"]  # what the router accepted when recorded
    assert upstream.json["prompt"] == "system: Be brief.\nuser: Hi\nassistant:"
    assert upstream.json["client_reference"] == "req_RECORDED"
    assert upstream.json["timeout"] == 60
    assert "Bearer" not in repr(upstream), "the router key must not show up in logs"


def test_a_whole_answer_becomes_a_chat_completion_under_our_alias_with_usage() -> None:
    recording = load("cortensor_chat")
    upstream = request_for(recording)
    answer = upstream.translator(now=1_800_000_000).map_body(recording["response"]["body"].encode())
    upstream_answer = json.loads(recording["response"]["body"])
    assert answer["object"] == "chat.completion"
    assert answer["id"] == "chatcmpl-req_RECORDED"
    assert answer["model"] == "gpt-oss-20b"
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": upstream_answer["choices"][0]["text"]}
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"] == upstream_answer["usage"]
    assert_nothing_leaks(json.dumps(answer), recording)


def test_a_streamed_chat_answer_arrives_as_chat_chunks_then_the_usage_chunk_the_client_asked_for() -> None:
    recording = load("cortensor_chat_stream")
    upstream = request_for(recording)
    assert upstream.include_usage
    events, translator = replay(upstream, recording["response"]["body"].encode(), 1_000_000)
    assert [event.kind for event in events][-1] == "done"
    mapped = chunks(events)
    assert all(chunk["object"] == "chat.completion.chunk" and chunk["model"] == "gpt-oss-20b" for chunk in mapped)
    assert all(chunk["id"] == "chatcmpl-req_RECORDED" for chunk in mapped)
    assert mapped[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in mapped if chunk["choices"])
    assert text == " ".join(completion_words("system: Be brief.\nuser: Hi\nassistant:", 4))
    assert mapped[-2]["choices"][0]["finish_reason"] == "length"
    assert mapped[-1]["choices"] == []
    assert mapped[-1]["usage"] == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    assert translator.usage == mapped[-1]["usage"]
    assert_nothing_leaks(client_bytes(events), recording)


@pytest.mark.parametrize("read_size", READ_SIZES)
def test_events_split_across_reads_anywhere_come_out_the_same(read_size: int) -> None:
    recording = load("cortensor_chat_stream")
    body = recording["response"]["body"].encode()
    whole, _ = replay(request_for(recording), body, len(body))
    pieces, translator = replay(request_for(recording), body, read_size)
    assert client_bytes(pieces) == client_bytes(whole)
    assert translator.usage == {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}


def test_a_text_stream_without_include_usage_hides_usage_from_the_client_but_keeps_it_for_metering() -> None:
    recording = load("cortensor_text_stream")
    events, translator = replay(request_for(recording), recording["response"]["body"].encode(), 5)
    mapped = chunks(events)
    assert all(chunk["object"] == "text_completion" and "usage" not in chunk for chunk in mapped)
    assert "".join(chunk["choices"][0]["text"] for chunk in mapped) == " ".join(completion_words("Once upon a time", 3))
    assert translator.usage == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}
    assert events[-1].kind == "done"


def test_an_upstream_error_mid_stream_ends_the_stream_with_an_error_and_nothing_after_it() -> None:
    recording = load("cortensor_stream_error")
    events, translator = replay(request_for(recording), recording["response"]["body"].encode(), 11)
    kinds = [event.kind for event in events]
    assert kinds == ["chunk", "chunk", "error"]
    assert "Injected failure" in events[-1].detail  # for the gateway's log, not for the client
    with pytest.raises(ValueError):
        events[-1].sse()
    assert translator.feed(b'data: {"choices":[{"text":"late"}]}\n\n') == []
    assert translator.finish() == []


def test_a_stream_cut_before_the_answer_is_complete_is_an_error() -> None:
    recording = load("cortensor_chat_stream")
    first_two_events = "\n\n".join(recording["response"]["body"].split("\n\n")[:2]) + "\n\n"
    events, _ = replay(request_for(recording), first_two_events.encode(), 1_000_000)
    assert [event.kind for event in events] == ["chunk", "chunk", "error"]


def test_a_stream_that_finished_but_never_said_done_is_completed() -> None:
    recording = load("cortensor_text_stream")
    body = recording["response"]["body"].replace("data: [DONE]\n\n", "")
    events, translator = replay(request_for(recording), body.encode(), 1_000_000)
    assert events[-1].kind == "done"
    assert translator.usage is not None


def test_an_upstream_error_answer_is_a_backend_error_not_a_completion() -> None:
    recording = load("cortensor_error_503")
    with pytest.raises(UpstreamError):
        request_for(recording).translator().map_body(recording["response"]["body"].encode())
    with pytest.raises(UpstreamError):
        request_for(recording).translator().map_body(b"<html>bad gateway</html>")


def test_a_chatml_template_shapes_the_prompt() -> None:
    alias = dataclasses.replace(ALIAS, prompt_template="<|im_start|>{role}\n{content}<|im_end|>\n")
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hi {there}"}]}]}
    upstream = build_upstream_request(
        body=body, kind="chat", alias=alias, target=TARGETS["cortensor"], request_id="req_X", timeout_seconds=5
    )
    assert upstream.json["prompt"] == "<|im_start|>user\nHi {there}<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("chat", {"messages": []}),
        ("chat", {"messages": "hello"}),
        ("text", {"prompt": ["one", "two"]}),
        ("text", {}),
        ("text", {"prompt": "x", "n": 3}),
    ],
)
def test_requests_a_router_cannot_serve_are_refused_before_sending(kind: str, body: dict[str, object]) -> None:
    with pytest.raises(AdapterError):
        build_upstream_request(
            body=body, kind=kind, alias=ALIAS, target=TARGETS["cortensor"], request_id="req_X", timeout_seconds=5
        )  # type: ignore[arg-type]


def test_sampling_options_pass_and_unknown_ones_do_not() -> None:
    body = {"prompt": "x", "max_completion_tokens": 9, "temperature": 0.5, "top_p": 0.9, "logit_bias": {"1": 2}}
    upstream = build_upstream_request(
        body=body, kind="text", alias=ALIAS, target=TARGETS["cortensor"], request_id="req_X", timeout_seconds=5
    )
    assert upstream.json == {
        "prompt": "x",
        "max_tokens": 9,
        "temperature": 0.5,
        "top_p": 0.9,
        "stream": False,
        "timeout": 5,
        "client_reference": "req_X",
    }
