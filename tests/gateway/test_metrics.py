"""/metrics: the deployment's gateway metrics in Prometheus' format, only for the operator's token."""

from __future__ import annotations

import re

import httpx
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from gateway.metrics import PUBLISH_INTERVAL_SECONDS
from tests.conftest import wait_until
from tests.gateway.conftest import Catalog, GatewayWorkers, ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}
TOKEN = "metrics-test-token"


def value(text: str, series: str) -> float:
    """The sample of one series (name with its labels, exactly as printed), or 0 when absent."""
    match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def test_without_the_token_the_endpoint_does_not_exist(gateway_server: ServerThread, settings: SettingsWrapper) -> None:
    settings.GATEWAY_METRICS_TOKEN = ""
    assert httpx.get(f"{gateway_server.url}/metrics").status_code == 404
    settings.GATEWAY_METRICS_TOKEN = TOKEN
    assert httpx.get(f"{gateway_server.url}/metrics").status_code == 404
    wrong = httpx.get(f"{gateway_server.url}/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 404
    assert TOKEN not in wrong.text


def test_requests_outcomes_and_latency_are_counted(
    gateway_server: ServerThread, gw: httpx.Client, settings: SettingsWrapper
) -> None:
    settings.GATEWAY_METRICS_TOKEN = TOKEN
    ok = 'portal_gateway_requests_total{endpoint="chat",outcome="ok",status="200"}'
    bad = 'portal_gateway_requests_total{endpoint="chat",outcome="client_error",status="404"}'
    before = scrape(gateway_server.url)

    for _ in range(3):
        assert gw.post("/v1/chat/completions", json=CHAT).status_code == 200
    assert gw.post("/v1/chat/completions", json={**CHAT, "model": "no-such-model"}).status_code == 404
    assert httpx.post(f"{gateway_server.url}/v1/chat/completions", json=CHAT).status_code == 401

    after = scrape(gateway_server.url)
    assert value(after, ok) - value(before, ok) == 3
    assert value(after, bad) - value(before, bad) == 1
    admitted = 'portal_gateway_admission_decisions_total{decision="standard"}'
    assert value(after, admitted) - value(before, admitted) == 3
    missing = 'portal_gateway_auth_failures_total{code="invalid_api_key"}'
    assert value(after, missing) - value(before, missing) == 1
    count = "portal_gateway_request_duration_seconds_count"
    assert value(after, count) - value(before, count) == 5
    assert value(after, 'portal_gateway_request_duration_seconds_bucket{le="+Inf"}') == value(after, count)
    assert "portal_usage_stream_unread" in after


def test_any_worker_answers_for_the_whole_deployment(catalog: Catalog) -> None:
    # Other gateways of this test run (the in-process one) publish into the same Redis; an answer none of them gives
    # (413 for a body over this limit) tells these workers' requests apart.
    workers = GatewayWorkers(2, extra_env={"GATEWAY_METRICS_TOKEN": TOKEN, "GATEWAY_MAX_BODY_BYTES": "1024"})
    try:
        first, second = workers.urls
        too_large = 'portal_gateway_requests_total{endpoint="chat",outcome="client_error",status="413"}'
        before = value(scrape(second), too_large)
        auth = {"Authorization": f"Bearer {catalog.secret}"}
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
        for _ in range(4):
            assert httpx.post(f"{first}/v1/chat/completions", json=big, headers=auth, timeout=10).status_code == 413

        # Each worker publishes its counts every PUBLISH_INTERVAL_SECONDS; the second reads the first's from Redis.
        def published(text: str) -> bool:
            return value(text, "portal_gateway_workers") >= 2 and value(text, too_large) - before >= 4

        wait_until(
            lambda: published(scrape(second)),
            timeout=PUBLISH_INTERVAL_SECONDS + 10,
            what="the second worker to report both workers and the first worker's 413s",
            step=0.25,
        )

        text = scrape(second)  # the second worker served none of them
        assert value(text, "portal_gateway_workers") >= 2
        assert value(text, too_large) - before == 4
    finally:
        workers.stop()
