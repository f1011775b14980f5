"""The upstream (a router node) slow, failing, dropping connections mid-stream and hanging, under concurrent load,
through the sandbox router's fault injection (routing/sandbox.py, POST /_sandbox/config)."""

from __future__ import annotations

from typing import Any

import pytest

from routing.health import health_board
from tests.conftest import Sandbox, wait_until
from tests.faults.conftest import (
    FIRST_BYTE_TIMEOUT,
    STREAM,
    Load,
    Seen,
    assert_ledger_matches,
    billed_units,
    drain_in_process,
)
from tests.gateway.conftest import Catalog

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def phase(url: str, secret: str, count: int, **load: Any) -> list[Seen]:
    run = Load([url], secret, count=count, seconds=30, concurrency=4, **load).start()
    run.wait_for(lambda seen: len(seen) == count, timeout=40)
    return run.stop()


def trust_again(catalog: Catalog) -> None:
    """Forget the target's passive health between phases, so each phase starts with a trusted target. A worker keeps
    its own view of availability only while every target is healthy (gateway/state.py, AvailabilityCache): a view
    that says ejected is never cached, so once the board is clean the worker's next request routes to the target."""
    board, target = health_board(), catalog.target.pk

    def trusted() -> bool:  # forgets again if a failure of the last phase was recorded after the first forget
        board.forget_sync([target])
        return target not in board.describe_sync([target])

    wait_until(trusted, timeout=5, what="the health board to hold nothing against the target")


def test_upstream_slow_failing_dropping_and_hanging_each_end_as_the_ledger_says(
    gateway_worker: str, big_plan_catalog: Catalog, sandbox: Sandbox
) -> None:
    """Expected, per fault:
    - slow (300 ms per answer): every request waits and gets its 200; nothing times out below the first-byte timeout.
    - failing (half the answers 503): the client gets 502 `backend_error` for a failed answer; after
      ROUTING_EJECT_AFTER_FAILURES failures in a row the only target is ejected and requests get 503
      `no_healthy_backend` at once instead of waiting on a failing node. Both are refunded: never billed.
    - dropping mid-stream (the connection cut after 2 tokens): the client already had its 200 and headers, and the
      stream ends with an SSE error event `backend_error` (no `[DONE]`); refunded.
    - hanging (no byte within GATEWAY_FIRST_BYTE_TIMEOUT, 1 s here): 504 `backend_timeout` after the timeout;
      refunded.
    No request is answered 500 or loses its connection; each has one ledger row with the outcome its client saw,
    and the allowance used equals the requests answered in full."""
    url, secret = gateway_worker, big_plan_catalog.secret
    seen: list[Seen] = []

    sandbox.configure(latency_ms=300)
    slow = phase(url, secret, 12)
    assert {(s.status, s.code) for s in slow} == {(200, None)}
    assert min(s.took for s in slow) >= 0.3
    seen += slow

    sandbox.reset()
    sandbox.configure(error_rate=0.5, error_status=503)
    failing = phase(url, secret, 40)
    assert {(s.status, s.code) for s in failing} <= {(200, None), (502, "backend_error"), (503, "no_healthy_backend")}
    assert any(s.status == 502 for s in failing)
    seen += failing

    sandbox.reset()
    trust_again(big_plan_catalog)
    sandbox.configure(fail_after_tokens=2, fail_mode="drop")
    dropped = phase(url, secret, 12, body=lambda index: {**STREAM, "max_tokens": 8})
    assert {(s.status, s.code) for s in dropped} <= {(200, "backend_error"), (503, "no_healthy_backend")}
    assert sum(s.status == 200 for s in dropped) >= 3  # ejected after three in a row, then refused at once
    seen += dropped

    sandbox.reset()
    trust_again(big_plan_catalog)
    sandbox.configure(hang=True)
    hanging = phase(url, secret, 4)
    assert {(s.status, s.code) for s in hanging} <= {(504, "backend_timeout"), (503, "no_healthy_backend")}
    assert all(FIRST_BYTE_TIMEOUT <= s.took < 5 for s in hanging if s.status == 504)
    seen += hanging

    assert all(s.status is not None for s in seen)
    rows = drain_in_process(len(seen))
    assert_ledger_matches(rows, seen, unanswered_outcomes=set())
    assert billed_units(url, secret) == sum(1 for s in seen if (s.status, s.code) == (200, None))
    cut = [rows[s.request_id] for s in dropped if s.status == 200 and s.request_id]
    assert all((row.completion_tokens or 0) >= 2 for row in cut)  # the tokens the client got are on record
