"""Structured logs (portal/logs.py): JSON lines in production, each with the request id when there is one."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from django.test import Client

from tests.conftest import ROOT, json_log_lines
from tests.portal.test_settings import PRODUCTION


def run_logging(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, logging; django.setup(); log = logging.getLogger('portal.check')\n" + code,
        ],
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_production_profile_writes_one_json_object_per_line() -> None:
    code = (
        "from portal.request_context import request_id_var\n"
        "token = request_id_var.set('req_01KBAD0000000000000000000Z')\n"
        "log.warning('upstream said no')\n"
        "request_id_var.reset(token)\n"
        "log.info('plain line', extra={'organization_id': 7})\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('it failed')\n"
    )
    result = run_logging(code, {**PRODUCTION, "DJANGO_SETTINGS_MODULE": "portal.settings"})
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["message"] for line in lines] == [
        "upstream said no",
        "plain line",
        "it failed",
    ]
    assert lines[0]["request_id"] == "req_01KBAD0000000000000000000Z"
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "portal.check"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", lines[0]["ts"])
    assert "request_id" not in lines[1] and lines[1]["organization_id"] == 7
    assert "ZeroDivisionError" in lines[2]["exception"]


def test_development_stays_plain_unless_log_format_asks_for_json() -> None:
    plain = run_logging("log.warning('hello')", {"DJANGO_SETTINGS_MODULE": "portal.settings"})
    assert plain.stderr.strip().endswith("WARNING portal.check hello"), plain.stderr
    as_json = run_logging("log.warning('hello')", {"DJANGO_SETTINGS_MODULE": "portal.settings", "LOG_FORMAT": "json"})
    assert json.loads(as_json.stderr)["message"] == "hello"


def test_a_bad_log_format_stops_start_up_with_the_variable_named() -> None:
    result = run_logging("", {"DJANGO_SETTINGS_MODULE": "portal.settings", "LOG_FORMAT": "xml"})
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Django's request logger, formatted as production formats it, into a buffer."""
    with json_log_lines("django.request") as buffer:
        yield buffer


def test_a_portal_request_gets_an_id_that_its_log_lines_carry(json_lines: io.StringIO, db: None) -> None:
    client = Client()
    client.get("/no-such-page/")
    client.get("/no-such-page/")
    first, second = (json.loads(line) for line in json_lines.getvalue().splitlines()[-2:])
    assert first["message"] == "Not Found: /no-such-page/"
    assert first["status_code"] == 404
    assert re.match(r"^req_[0-9A-Z]{26}$", first["request_id"])
    assert first["request_id"] != second["request_id"]


def test_a_clients_or_proxys_request_id_is_kept_when_it_is_sane(json_lines: io.StringIO, db: None) -> None:
    client = Client()
    client.get("/no-such-page/", headers={"X-Request-ID": "trace-42.a:b"})
    client.get("/no-such-page/", headers={"X-Request-ID": "bad id\nforged: line"})
    kept, replaced = (json.loads(line)["request_id"] for line in json_lines.getvalue().splitlines()[-2:])
    assert kept == "trace-42.a:b"
    assert replaced.startswith("req_")
