"""Record upstream request/response pairs from the sandbox router for the adapter tests.

    .venv/bin/python tests/routing/recordings/record.py        # rewrites tests/routing/recordings/*.json

Each recording holds the request our adapter built (method, path, JSON body, with the router key left out) and the
upstream's raw answer (status, content type, body text), exactly as it came over the wire.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django
import httpx

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
KEY = "recording-router-key"
PORT = 18733
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()

from routing.adapters import build_upstream_request  # noqa: E402
from routing.table import AliasRoute, TargetEntry  # noqa: E402

ALIAS = AliasRoute(alias="gpt-oss-20b", pool_id=1, pool_slug="oss-20b", upstream_model="gpt-oss-20b")
BASE = f"http://127.0.0.1:{PORT}"
CORTENSOR = TargetEntry(
    id=1, pool_id=1, name="router-a", protocol="cortensor", base_url=BASE, session_id=7, api_key=KEY
)
OPENAI = TargetEntry(id=2, pool_id=1, name="vllm-1", protocol="openai", base_url=BASE + "/v1", api_key=KEY)
CHAT = {
    "model": "gpt-oss-20b",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
}

CASES: list[dict[str, Any]] = [
    {"name": "cortensor_chat", "target": CORTENSOR, "kind": "chat", "body": {**CHAT, "max_tokens": 5}},
    {
        "name": "cortensor_chat_stream",
        "target": CORTENSOR,
        "kind": "chat",
        "body": {**CHAT, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}},
    },
    {
        "name": "cortensor_text_stream",
        "target": CORTENSOR,
        "kind": "text",
        "body": {"model": "gpt-oss-20b", "prompt": "Once upon a time", "max_tokens": 3, "stream": True},
    },
    {
        "name": "cortensor_stream_error",
        "target": CORTENSOR,
        "kind": "chat",
        "body": {**CHAT, "max_tokens": 6, "stream": True},
        "sandbox": {"fail_after_tokens": 2},
    },
    {
        "name": "cortensor_error_503",
        "target": CORTENSOR,
        "kind": "chat",
        "body": {**CHAT, "max_tokens": 5},
        "sandbox": {"error_rate": 1.0, "error_status": 503},
    },
    {"name": "openai_chat", "target": OPENAI, "kind": "chat", "body": {**CHAT, "max_tokens": 5, "temperature": 0.2}},
    {"name": "openai_chat_stream", "target": OPENAI, "kind": "chat", "body": {**CHAT, "max_tokens": 3, "stream": True}},
    {
        "name": "openai_chat_stream_usage",
        "target": OPENAI,
        "kind": "chat",
        "body": {**CHAT, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    },
    {
        "name": "openai_text",
        "target": OPENAI,
        "kind": "text",
        "body": {"model": "gpt-oss-20b", "prompt": "Once upon a time", "max_tokens": 4},
    },
    {
        "name": "openai_stream_error",
        "target": OPENAI,
        "kind": "chat",
        "body": {**CHAT, "max_tokens": 6, "stream": True},
        "sandbox": {"fail_after_tokens": 3},
    },
]


def main() -> None:
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_sandbox_router", "--port", str(PORT), "--key", KEY], cwd=ROOT
    )
    try:
        for _ in range(100):
            try:
                httpx.get(BASE + "/api/v1/ping")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        for case in CASES:
            record(case)
    finally:
        process.terminate()
        process.wait()


def record(case: dict[str, Any]) -> None:
    auth = {"Authorization": f"Bearer {KEY}"}
    reset = {"error_rate": 0.0, "fail_after_tokens": -1, "error_status": 500}
    httpx.post(BASE + "/_sandbox/config", json={**reset, **case.get("sandbox", {})}, headers=auth).raise_for_status()
    upstream = build_upstream_request(
        body=case["body"],
        kind=case["kind"],
        alias=ALIAS,
        target=case["target"],
        request_id="req_RECORDED",
        timeout_seconds=60,
    )
    response = httpx.request(upstream.method, upstream.url, content=upstream.content(), headers=dict(upstream.headers))
    recording = {
        "protocol": upstream.protocol,
        "kind": upstream.kind,
        "client_body": case["body"],
        "request": {"method": upstream.method, "path": upstream.url.removeprefix(BASE), "json": upstream.json},
        "response": {
            "status": response.status_code,
            "content_type": response.headers["content-type"],
            "body": response.text,
        },
    }
    (HERE / f"{case['name']}.json").write_text(json.dumps(recording, indent=2) + "\n")
    print("recorded", case["name"], response.status_code)


if __name__ == "__main__":
    main()
