"""The OpenAI-compatible adapter against request/response pairs recorded from the sandbox router."""

from __future__ import annotations

import dataclasses
import json

import pytest

from routing.adapters import build_upstream_request
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


def test_the_request_passes_through_with_the_upstream_model_name_and_usage_switched_on() -> None:
    recording = load("openai_chat_stream")
    alias = dataclasses.replace(ALIAS, upstream_model="openai/gpt-oss-20b")
    body = {**recording["client_body"], "temperature": 0.3, "stream_options": {"continuous_usage_stats": False}}
    upstream = build_upstream_request(
        body=body, kind="chat", alias=alias, target=TARGETS["openai"], request_id="req_X", timeout_seconds=60
    )
    assert upstream.url == f"{BASE}/v1/chat/completions"
    assert upstream.headers["Authorization"] == f"Bearer {KEY}"
    assert upstream.json["model"] == "openai/gpt-oss-20b"
    assert upstream.json["messages"] == body["messages"]
    assert upstream.json["temperature"] == 0.3
    assert upstream.json["stream_options"] == {"continuous_usage_stats": False, "include_usage": True}
    assert upstream.include_usage is False  # the client did not ask: its usage chunk will be dropped
    assert body["stream_options"] == {"continuous_usage_stats": False}, "the client's body is not modified"


def test_the_recorded_request_is_what_we_build() -> None:
    for name in ("openai_chat", "openai_chat_stream", "openai_text"):
        recording = load(name)
        upstream = request_for(recording)
        assert upstream.json == recording["request"]["json"]
        assert upstream.url == BASE + recording["request"]["path"]


def test_a_whole_chat_answer_keeps_its_fields_under_our_id_and_alias() -> None:
    recording = load("openai_chat")
    answer = request_for(recording).translator().map_body(recording["response"]["body"].encode())
    upstream_answer = json.loads(recording["response"]["body"])
    assert answer["id"] == "chatcmpl-req_RECORDED"
    assert answer["model"] == "gpt-oss-20b"
    assert answer["choices"] == upstream_answer["choices"]
    assert answer["usage"] == upstream_answer["usage"]
    assert_nothing_leaks(json.dumps(answer), recording)


def test_a_text_completion_answer_is_mapped_too() -> None:
    recording = load("openai_text")
    translator = request_for(recording).translator()
    answer = translator.map_body(recording["response"]["body"].encode())
    assert answer["object"] == "text_completion"
    assert answer["id"] == "cmpl-req_RECORDED"
    assert translator.usage == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


def test_the_usage_chunk_the_client_did_not_ask_for_is_dropped_but_counted() -> None:
    recording = load("openai_chat_stream")
    upstream_chunks = [e for e in recording["response"]["body"].split("\n\n") if e.startswith("data: {")]
    assert '"usage"' in upstream_chunks[-1], "the recording has the usage chunk we forced on"
    events, translator = replay(request_for(recording), recording["response"]["body"].encode(), 13)
    mapped = chunks(events)
    assert len(mapped) == len(upstream_chunks) - 1
    assert all("usage" not in chunk for chunk in mapped)
    assert all(chunk["model"] == "gpt-oss-20b" and chunk["id"] == "chatcmpl-req_RECORDED" for chunk in mapped)
    assert translator.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert events[-1].kind == "done"
    assert_nothing_leaks(client_bytes(events), recording)


def test_the_usage_chunk_the_client_asked_for_is_passed_on() -> None:
    recording = load("openai_chat_stream_usage")
    events, translator = replay(request_for(recording), recording["response"]["body"].encode(), 1_000_000)
    mapped = chunks(events)
    assert mapped[-1]["choices"] == []
    assert mapped[-1]["usage"] == translator.usage == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


@pytest.mark.parametrize("read_size", [1, 4, 9, 33, 100])
def test_events_split_across_reads_come_out_the_same(read_size: int) -> None:
    recording = load("openai_chat_stream_usage")
    body = recording["response"]["body"].encode()
    whole, _ = replay(request_for(recording), body, len(body))
    pieces, _ = replay(request_for(recording), body, read_size)
    assert client_bytes(pieces) == client_bytes(whole)


def test_an_upstream_error_mid_stream_stops_the_stream() -> None:
    recording = load("openai_stream_error")
    events, _ = replay(request_for(recording), recording["response"]["body"].encode(), 7)
    assert [event.kind for event in events] == ["chunk", "chunk", "chunk", "chunk", "error"]
    assert "Injected failure mid-stream" in events[-1].detail


def test_servers_that_put_usage_null_on_every_chunk_do_not_show_it_to_clients_who_did_not_ask() -> None:
    upstream = request_for(load("openai_chat_stream"))
    body = (
        b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"h\xc3'
        b'\xa9"},"finish_reason":null}],"usage":null}\r\n\r\n'
        b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{},'
        b'"finish_reason":"stop"}],"usage":null}\r\n\r\n'
        b'data: {"id":"x","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":1,"total_tokens":3}}\r\n\r\ndata: [DONE]\r\n\r\n'
    )
    events, translator = replay(upstream, body, 1)  # one byte at a time, through the two-byte "é"
    mapped = chunks(events)
    assert [chunk["choices"][0]["delta"].get("content") for chunk in mapped] == ["hé", None]
    assert all("usage" not in chunk for chunk in mapped)
    assert translator.usage == {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}
