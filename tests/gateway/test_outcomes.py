"""How a request ended: one Outcome enum (portal/outcomes.py) for the gateway and metering, each outcome with the
code the client is sent and whether the units go back; one authentication path for every /v1 endpoint."""

from __future__ import annotations

import httpx
import orjson
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from gateway.metrics import GatewayMetrics
from metering import models as metering_models
from metering.events import OUTCOMES
from portal.error_catalogue import CATALOGUE
from portal.outcomes import Outcome
from tests.gateway.conftest import ServerThread
from tests.gateway.test_metrics import TOKEN, scrape, value


def test_the_outcomes_are_the_strings_the_ledger_stores() -> None:
    assert tuple(Outcome) == OUTCOMES == tuple(metering_models.Outcome.values)
    assert all(type(outcome.value) is str for outcome in Outcome)


def test_each_outcome_names_a_code_of_the_catalogue_or_none() -> None:
    for outcome in Outcome:
        assert outcome.error_code == "" or outcome.error_code in CATALOGUE, outcome


def test_failures_upstream_and_invalid_bodies_are_refunded_and_answers_are_not() -> None:
    refunded = {outcome for outcome in Outcome if outcome.refunded}
    assert refunded == {Outcome.ROUTING_ERROR, Outcome.BACKEND_ERROR, Outcome.BACKEND_TIMEOUT, Outcome.CLIENT_ERROR}
    # A client that left mid-stream got part of an answer; unknown is metering's call (METERING_REFUND_UNKNOWN).
    assert not Outcome.CLIENT_CANCELLED.refunded and not Outcome.UNKNOWN.refunded
    upstream = {outcome for outcome in Outcome if outcome.upstream_failure}
    assert upstream == {Outcome.ROUTING_ERROR, Outcome.BACKEND_ERROR, Outcome.BACKEND_TIMEOUT}


def test_metrics_counted_by_outcome_can_be_shared_between_workers() -> None:
    """The snapshot each worker publishes goes through orjson, which refuses str subclasses as keys: an Outcome must
    be counted by its plain string, or /metrics loses every worker that saw an upstream failure."""
    metrics = GatewayMetrics()
    metrics.answered("chat", Outcome.BACKEND_TIMEOUT, 504, 30)
    metrics.answered("chat", Outcome.OK, 200, 5)
    shared = orjson.loads(orjson.dumps(metrics.snapshot()))
    assert shared["upstream_errors"] == {"backend_timeout": 1}
    assert sorted(shared["requests"]) == [["chat", "backend_timeout", 504, 1], ["chat", "ok", 200, 1]]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_endpoint_counts_a_missing_key_as_an_auth_failure(
    gateway_server: ServerThread, settings: SettingsWrapper
) -> None:
    settings.GATEWAY_METRICS_TOKEN = TOKEN
    series = 'portal_gateway_auth_failures_total{code="invalid_api_key"}'
    before = value(scrape(gateway_server.url), series)
    for method, path in (("GET", "/v1/models"), ("GET", "/v1/usage"), ("POST", "/v1/chat/completions")):
        response = httpx.request(method, f"{gateway_server.url}{path}", json={} if method == "POST" else None)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert value(scrape(gateway_server.url), series) - before == 3
