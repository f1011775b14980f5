"""Active health (the beat task) and passive health against the sandbox router, with failures injected."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from django.conf import settings
from django.test import override_settings

from portal.invalidation import add_local_listener, remove_local_listener
from routing.adapters import build_upstream_request
from routing.health import BoardSettings, MemoryHealthBoard, counts_as_failure
from routing.models import HealthStatus, Protocol, RouterTarget
from routing.selection import pick_target
from routing.table import load_routing_table
from routing.tasks import probe_targets
from tests.conftest import Sandbox, free_port
from tests.factories import ModelAliasFactory, RouterPoolFactory, RouterTargetFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
KEY_VAR = "TEST_SANDBOX_ROUTER_KEY"


@pytest.fixture(autouse=True)
def router_key(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> None:
    monkeypatch.setenv(KEY_VAR, sandbox.key)


@pytest.fixture
def published() -> Iterator[list[tuple[str, str]]]:
    messages: list[tuple[str, str]] = []

    def listener(topic: str, ident: str) -> None:
        messages.append((topic, ident))

    add_local_listener(listener)
    yield messages
    remove_local_listener(listener)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung router)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield int(server.getsockname()[1])


def cortensor_target(sandbox: Sandbox, **fields: object) -> RouterTarget:
    defaults: dict[str, object] = {"base_url": sandbox.url, "session_id": 7, "api_key_env": KEY_VAR}
    return RouterTargetFactory(**{**defaults, **fields})


def openai_target(sandbox: Sandbox, **fields: object) -> RouterTarget:
    defaults = {
        "base_url": f"{sandbox.url}/v1",
        "protocol": Protocol.OPENAI,
        "session_id": None,
        "api_key_env": KEY_VAR,
    }
    return RouterTargetFactory(**{**defaults, **fields})


def test_healthy_targets_of_both_protocols_are_recorded_with_their_latency(sandbox: Sandbox) -> None:
    router, server = cortensor_target(sandbox), openai_target(sandbox)
    assert probe_targets() == {"probed": 2, "healthy": 2, "unhealthy": 0}
    for target in (router, server):
        target.refresh_from_db()
        assert target.health_status == HealthStatus.HEALTHY
        assert target.latency_ms is not None and 0 < target.latency_ms < 2000
        assert target.last_error == ""
        assert target.last_probed_at is not None


def test_with_failures_injected_the_node_still_answers_its_ping_and_passive_health_ejects_it(
    sandbox: Sandbox,
) -> None:
    """Injected failures hit completions, not the ping: the probe keeps saying the node is up, and it is the
    gateway's passive health that takes the failing target out of rotation."""
    sandbox.configure(error_rate=1.0, error_status=503)
    pool = RouterPoolFactory()
    failing = cortensor_target(sandbox, pool=pool, name="failing")
    ModelAliasFactory(alias="gpt-oss-20b", pool=pool)
    probe_targets()
    failing.refresh_from_db()
    assert failing.health_status == HealthStatus.HEALTHY

    route = load_routing_table().route("gpt-oss-20b")
    assert route is not None
    board = MemoryHealthBoard(BoardSettings.from_settings())
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for attempt in range(settings.ROUTING_EJECT_AFTER_FAILURES):
        target = pick_target(route.targets, available=asyncio.run(board.available(route.target_ids)))
        assert target is not None, f"ejected too early, after {attempt} failures"
        upstream = build_upstream_request(
            body=body, kind="chat", alias=route, target=target, request_id=f"req_{attempt}", timeout_seconds=5
        )
        response = httpx.post(upstream.url, content=upstream.content(), headers=dict(upstream.headers))
        assert response.status_code == 503
        if counts_as_failure(response.status_code):
            asyncio.run(board.record_failure(target.id))
    assert pick_target(route.targets, available=asyncio.run(board.available(route.target_ids))) is None
    assert sandbox.stats()["errors_injected"] == settings.ROUTING_EJECT_AFTER_FAILURES


def test_a_wrong_router_key_makes_an_openai_target_unhealthy_without_showing_the_key(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_WRONG_KEY", "sk-wrong-but-secret-1234")
    target = openai_target(sandbox, api_key_env="TEST_WRONG_KEY")
    assert probe_targets()["unhealthy"] == 1
    target.refresh_from_db()
    assert target.health_status == HealthStatus.UNHEALTHY
    assert target.last_error == "HTTP 401 on /models"
    assert "sk-wrong" not in target.last_error


def test_an_unreachable_router_is_unhealthy_with_the_connect_error(sandbox: Sandbox) -> None:
    target = cortensor_target(sandbox, base_url=f"http://127.0.0.1:{free_port()}")
    probe_targets()
    target.refresh_from_db()
    assert target.health_status == HealthStatus.UNHEALTHY
    assert target.latency_ms is None
    assert target.last_error.startswith("ConnectError on /api/v1/ping")


def test_a_hung_router_times_out_within_the_probe_timeout(sandbox: Sandbox, silent_port: int) -> None:
    hung = cortensor_target(sandbox, base_url=f"http://127.0.0.1:{silent_port}")
    fine = cortensor_target(sandbox)
    started = time.monotonic()
    with override_settings(ROUTING_PROBE_TIMEOUT_SECONDS=0.3):
        probe_targets()
    assert time.monotonic() - started < 2.0, "targets are probed at once, each bounded by the timeout"
    hung.refresh_from_db()
    fine.refresh_from_db()
    assert hung.health_status == HealthStatus.UNHEALTHY
    assert hung.last_error == "timed out after 0.3s on /api/v1/ping"
    assert fine.health_status == HealthStatus.HEALTHY


def test_a_verdict_that_flips_reloads_every_gateway_routing_table_and_a_steady_one_does_not(
    sandbox: Sandbox, published: list[tuple[str, str]], django_capture_on_commit_callbacks: object
) -> None:
    target = cortensor_target(sandbox, health_status=HealthStatus.HEALTHY)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        probe_targets()
    assert published == []
    RouterTarget.objects.filter(pk=target.pk).update(base_url=f"http://127.0.0.1:{free_port()}")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        probe_targets()
    assert published == [("routing", "")]
    pool_route = load_routing_table()
    assert all(t.probe_healthy is False for route in pool_route.routes.values() for t in route.targets)


def test_disabled_targets_are_not_probed(sandbox: Sandbox) -> None:
    target = cortensor_target(sandbox, enabled=False)
    assert probe_targets()["probed"] == 0
    target.refresh_from_db()
    assert target.last_probed_at is None


def test_the_beat_schedule_names_the_registered_task() -> None:
    from portal.celery import app

    app.loader.import_default_modules()
    scheduled = settings.CELERY_BEAT_SCHEDULE["routing-probe-targets"]["task"]
    assert scheduled == probe_targets.name
    assert scheduled in app.tasks
