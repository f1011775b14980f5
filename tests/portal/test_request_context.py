"""Every line logged while serving a portal request carries its id, in a task enqueued for it too, whatever the
message's arguments (portal/request_context.py, portal/celery.py); no id outlives its request."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import Client

from portal.celery import app
from portal.request_context import request_id_var
from tests.conftest import json_log_lines

pytestmark = pytest.mark.urls("tests.portal.request_urls")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The test views' and task's lines, formatted as production formats them."""
    with json_log_lines("portal.check", logging.INFO) as buffer:
        yield buffer


def logged(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_pages_line_carries_the_requests_id(lines: io.StringIO) -> None:
    client = Client()
    client.get("/logs/", headers={"X-Request-ID": "lb-trace-7"})
    client.get("/logs/")

    first, second = logged(lines)
    assert first == {**first, "message": "the page ran", "request_id": "lb-trace-7"}
    assert second["request_id"].startswith("req_") and second["request_id"] != "lb-trace-7"
    assert request_id_var.get() is None  # the middleware reset it: the test's own lines belong to no request


def test_a_task_run_eagerly_for_a_request_logs_as_that_request(lines: io.StringIO) -> None:
    """Embedded mode (no Redis) runs tasks in the request's own context."""
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        Client().get("/enqueues/", headers={"X-Request-ID": "lb-trace-8"})
    finally:
        app.conf.task_always_eager = eager

    (line,) = logged(lines)
    assert (line["message"], line["request_id"]) == ("the task ran", "lb-trace-8")


@pytest.mark.slow
def test_a_task_a_worker_runs_for_a_request_logs_as_that_request(lines: io.StringIO) -> None:
    """The id travels in the task message's headers through Redis to a worker, which sets it around the task."""
    assert not app.conf.task_always_eager
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        Client().get("/enqueues/", headers={"X-Request-ID": "lb-trace-9"})
        deadline = time.monotonic() + 20
        while not lines.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        app.send_task("tests.portal.log_a_line")  # enqueued outside any request: its line has no id
        while len(logged(lines)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    for_request, outside = logged(lines)
    assert (for_request["message"], for_request["request_id"]) == ("the task ran", "lb-trace-9")
    assert outside["message"] == "the task ran" and "request_id" not in outside
