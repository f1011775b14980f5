"""Replaying the upstream recordings in tests/routing/recordings (made by recordings/record.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routing.adapters import StreamEvent, UpstreamRequest, build_upstream_request
from routing.table import AliasRoute, TargetEntry

RECORDINGS = Path(__file__).resolve().parent / "recordings"
KEY = "recording-router-key"
BASE = "http://10.1.2.3:8100"
ALIAS = AliasRoute(alias="gpt-oss-20b", pool_id=1, pool_slug="oss-20b", upstream_model="gpt-oss-20b")
TARGETS = {
    "cortensor": TargetEntry(
        id=1, pool_id=1, name="router-a", protocol="cortensor", base_url=BASE, session_id=7, api_key=KEY
    ),
    "openai": TargetEntry(id=2, pool_id=1, name="vllm-1", protocol="openai", base_url=BASE + "/v1", api_key=KEY),
}
# None of these may reach a client: router host, session, key, target names (plus the upstream's own ids).
SECRETS = ("10.1.2.3", "127.0.0.1", "session", KEY, "router-a", "vllm-1")


def load(name: str) -> dict[str, Any]:
    return json.loads((RECORDINGS / f"{name}.json").read_text())


def upstream_ids(recording: dict[str, Any]) -> set[str]:
    """The ids the upstream gave its answer (whole or streamed)."""
    body = recording["response"]["body"]
    texts = [body] if not body.startswith("data:") else [line[6:] for line in body.split("\n") if line[6:7] == "{"]
    return {json.loads(text)["id"] for text in texts if "id" in json.loads(text)}


def assert_nothing_leaks(sent: bytes | str, recording: dict[str, Any]) -> None:
    text = sent.decode() if isinstance(sent, bytes) else sent
    for secret in (*SECRETS, *upstream_ids(recording)):
        assert secret not in text, f"{secret!r} reached the client"


def request_for(recording: dict[str, Any], request_id: str = "req_RECORDED") -> UpstreamRequest:
    return build_upstream_request(
        body=recording["client_body"],
        kind=recording["kind"],
        alias=ALIAS,
        target=TARGETS[recording["protocol"]],
        request_id=request_id,
        timeout_seconds=60,
    )


def replay(upstream: UpstreamRequest, body: bytes, read_size: int) -> tuple[list[StreamEvent], Any]:
    """Feed a recorded stream in reads of `read_size` bytes, then end it; the events and the translator."""
    translator = upstream.translator(now=1_800_000_000)
    events: list[StreamEvent] = []
    for start in range(0, len(body), read_size):
        events.extend(translator.feed(body[start : start + read_size]))
    events.extend(translator.finish())
    return events, translator


def client_bytes(events: list[StreamEvent]) -> bytes:
    return b"".join(event.sse() for event in events if event.kind != "error")


def chunks(events: list[StreamEvent]) -> list[dict[str, Any]]:
    return [event.payload for event in events if event.kind == "chunk" and event.payload is not None]
