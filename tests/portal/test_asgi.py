"""portal/asgi.py: /v1 goes to the gateway, everything else to Django; checked in-process and over real HTTP."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from portal.asgi import application, is_gateway_path
from tests.conftest import free_port, start_process, stop_process


def request(method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await client.request(method, path)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1", True),
        ("/v1/", True),
        ("/v1/chat/completions", True),
        ("/v10/x", False),
        ("/", False),
        ("/admin/", False),
        ("/api/v1/keys", False),
        ("/metrics", True),
        ("/metrics/x", False),
    ],
)
def test_only_v1_paths_go_to_the_gateway(path: str, expected: bool) -> None:
    assert is_gateway_path(path) is expected


def test_a_v1_path_answers_in_the_product_error_envelope() -> None:
    response = request("GET", "/v1/nowhere")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert error["category"] == "invalid_request"
    assert error["next_step"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.headers["x-request-id"].startswith("req_")


@pytest.mark.django_db
def test_other_paths_go_to_django() -> None:
    response = request("GET", "/")
    assert response.status_code == 200
    assert "Cortensor Portal" in response.text
    assert "x-request-id" not in response.headers


@pytest.mark.slow
def test_the_production_server_command_serves_both_halves() -> None:
    port = free_port()
    process = start_process(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.asgi:application",
            "-k",
            "portal.serving.PortalUvicornWorker",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        port,
    )
    try:
        gateway = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
        assert gateway.status_code == 401
        assert gateway.json()["error"]["code"] == "invalid_api_key"
        portal = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert portal.json() == {"status": "ok"}
    finally:
        stop_process(process)
