"""Every setting the configuration tables document (README "Configuration", docs/metering.md "Settings") is read from
the environment variable it names: a value there changes the setting, and a value that does not parse stops start-up
with the variable named. portal/settings.py is run afresh for each case, with the environment the case gives."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import ROOT
from tests.portal.test_settings import PRODUCTION


@dataclass(frozen=True)
class Case:
    value: str
    setting: str
    expected: Any  # the setting's value, or a check of it
    bad: str | None = None  # a value that must stop start-up; None for free text
    also: dict[str, str] = field(default_factory=dict)  # other variables the value needs


def database_host(databases: dict[str, Any]) -> bool:
    return databases["default"]["HOST"] == "db.example" and databases["default"]["PORT"] == "5433"


def mail_host(mailers: dict[str, Any]) -> bool:
    return mailers["default"]["OPTIONS"]["host"] == "mail.example"


CASES: dict[str, Case] = {
    "PORTAL_PROFILE": Case(
        "production", "PRODUCTION", True, "prod", {k: v for k, v in PRODUCTION.items() if k != "PORTAL_PROFILE"}
    ),
    "SECRET_KEY": Case(
        "Zq8-a-secret-key-for-this-test-only-9f8e7d6c5b4a3f2e1d0c",
        "SECRET_KEY",
        "Zq8-a-secret-key-for-this-test-only-9f8e7d6c5b4a3f2e1d0c",
    ),
    "DEBUG": Case("0", "DEBUG", False, "ture"),
    "ALLOWED_HOSTS": Case("a.example, b.example", "ALLOWED_HOSTS", ["a.example", "b.example"], "a.example,,b.example"),
    "CSRF_TRUSTED_ORIGINS": Case("https://a.example", "CSRF_TRUSTED_ORIGINS", ["https://a.example"], "a,,b"),
    "PORTAL_BASE_URL": Case("https://portal.example/", "PORTAL_BASE_URL", "https://portal.example", "portal.example"),
    "DATABASE_URL": Case(
        "postgres://u@db.example:5433/portal", "DATABASES", database_host, "mysql://db.example/portal"
    ),
    "REDIS_URL": Case("redis://127.0.0.1:6379/3", "REDIS_URL", "redis://127.0.0.1:6379/3", "http://127.0.0.1:6379"),
    "EMAIL_URL": Case("smtp://u:p@mail.example:587", "MAILERS", mail_host, "mail.example"),
    "DEFAULT_FROM_EMAIL": Case("Ops <ops@example.com>", "DEFAULT_FROM_EMAIL", "Ops <ops@example.com>"),
    "TIME_ZONE": Case("Europe/Berlin", "TIME_ZONE", "Europe/Berlin"),
    "LOG_LEVEL": Case("DEBUG", "LOG_LEVEL", "DEBUG", "LOUD"),
    "LOG_FORMAT": Case("json", "LOG_FORMAT", "json", "xml"),
    "SERVER_HEADER_TIMEOUT_SECONDS": Case("5", "SERVER_HEADER_TIMEOUT_SECONDS", 5.0, "soon"),
    "SERVER_BODY_TIMEOUT_SECONDS": Case("12.5", "SERVER_BODY_TIMEOUT_SECONDS", 12.5, "0"),
    "SERVER_MAX_CONNECTIONS": Case("50", "SERVER_MAX_CONNECTIONS", 50, "many"),
    "TRUSTED_PROXIES": Case("10.0.0.5, 10.1.0.0/16", "TRUSTED_PROXIES", ["10.0.0.5/32", "10.1.0.0/16"], "the-proxy"),
    "GATEWAY_MAX_BODY_BYTES": Case("2048", "GATEWAY_MAX_BODY_BYTES", 2048, "lots"),
    "GATEWAY_CONNECT_TIMEOUT": Case("1.5", "GATEWAY_CONNECT_TIMEOUT", 1.5, "fast"),
    "GATEWAY_FIRST_BYTE_TIMEOUT": Case("30", "GATEWAY_FIRST_BYTE_TIMEOUT", 30.0, "nan"),
    "GATEWAY_TOTAL_TIMEOUT": Case("120", "GATEWAY_TOTAL_TIMEOUT", 120.0, "0"),
    "GATEWAY_UPSTREAM_POOL_SIZE": Case("64", "GATEWAY_UPSTREAM_POOL_SIZE", 64, "0"),
    "GATEWAY_UPSTREAM_KEEPALIVE_SECONDS": Case("2", "GATEWAY_UPSTREAM_KEEPALIVE_SECONDS", 2.0, "-1"),
    "GATEWAY_UPSTREAM_CA_FILE": Case(
        str(ROOT / "pyproject.toml"), "GATEWAY_UPSTREAM_CA_FILE", str(ROOT / "pyproject.toml"), "/no/such/ca.pem"
    ),
    "GATEWAY_INVALID_KEY_LIMIT": Case("9", "GATEWAY_INVALID_KEY_LIMIT", 9, "nine"),
    "GATEWAY_INVALID_KEY_WINDOW_SECONDS": Case("30", "GATEWAY_INVALID_KEY_WINDOW_SECONDS", 30.0, "0.5"),
    "GATEWAY_METRICS_TOKEN": Case("metrics-token", "GATEWAY_METRICS_TOKEN", "metrics-token"),
    "SANDBOX_ROUTER_KEY": Case("rk-test", "SANDBOX_ROUTER_KEY", "rk-test"),
    "ADMISSION_ON_UNAVAILABLE": Case("fail_open", "ADMISSION_ON_UNAVAILABLE", "fail_open", "open"),
    "ROUTING_EJECT_AFTER_FAILURES": Case("5", "ROUTING_EJECT_AFTER_FAILURES", 5, "0"),
    "ROUTING_EJECT_SECONDS": Case("10", "ROUTING_EJECT_SECONDS", 10.0, "a while"),
    "ROUTING_PROBE_INTERVAL_SECONDS": Case("30", "ROUTING_PROBE_INTERVAL_SECONDS", 30, "1.5"),
    "ROUTING_PROBE_TIMEOUT_SECONDS": Case("1", "ROUTING_PROBE_TIMEOUT_SECONDS", 1.0, "0"),
    "SIWE_ALLOWED_CHAIN_IDS": Case("1,8453", "SIWE_ALLOWED_CHAIN_IDS", [1, 8453], "1,base"),
    "SIWE_NONCE_TTL_SECONDS": Case("120", "SIWE_NONCE_TTL_SECONDS", 120, "5"),
    "SIWE_WALLET_ONLY_PLAN": Case("wallet-trial", "SIWE_WALLET_ONLY_PLAN", "wallet-trial", "no spaces"),
    "SIWE_SIGNUPS_PER_HOUR": Case("2", "SIWE_SIGNUPS_PER_HOUR", 2, "0"),
    "INVITATION_TTL_DAYS": Case("3", "INVITATION_TTL_DAYS", 3, "365"),
    "METERING_BATCH_SIZE": Case("1000", "METERING_BATCH_SIZE", 1000, "big"),
    "METERING_CLAIM_IDLE_SECONDS": Case("30", "METERING_CLAIM_IDLE_SECONDS", 30, "0"),
    "METERING_DRAIN_BUDGET_SECONDS": Case("2.5", "METERING_DRAIN_BUDGET_SECONDS", 2.5, "ten"),
    "METERING_DEAD_STREAM": Case("usage:dead:b", "METERING_DEAD_STREAM", "usage:dead:b", "usage:events"),
    "METERING_MAX_DELIVERIES": Case("3", "METERING_MAX_DELIVERIES", 3, "0"),
    "METERING_DEAD_STREAM_MAXLEN": Case("5000", "METERING_DEAD_STREAM_MAXLEN", 5000, "1e5"),
    "METERING_STALE_MARGIN_SECONDS": Case("60", "METERING_STALE_MARGIN_SECONDS", 60, "-1"),
    "METERING_REFUND_UNKNOWN": Case("yes", "METERING_REFUND_UNKNOWN", True, "maybe"),
    "METERING_RETENTION_DAYS": Case("30", "METERING_RETENTION_DAYS", 30, "0"),
    "METERING_RECONCILE_HOURS": Case("6", "METERING_RECONCILE_HOURS", 6, "a day"),
    "METERING_LAST_USED_RESOLUTION_SECONDS": Case("10", "METERING_LAST_USED_RESOLUTION_SECONDS", 10, "-5"),
    "BILLING_USAGE_SETTLE_SECONDS": Case("7200", "BILLING_USAGE_SETTLE_SECONDS", 7200, "an hour"),
}

_NAME = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")


def documented(path: str, header: str) -> set[str]:
    """The variables named in the first column of the table under `header` in `path`."""
    text = (ROOT / path).read_text()
    rows = text[text.index(header) :].split("\n\n", 1)[0].splitlines()[2:]
    return {name for row in rows for name in _NAME.findall(row.split("|")[1])}


def load_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, Any]:
    """portal/settings.py's names, run with every documented variable unset except those in `env`."""
    for name in CASES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "portal" / "settings.py"), run_name="settings_under_test")


def test_every_documented_variable_has_a_case() -> None:
    names = documented("README.md", "| variable | default | meaning |") | documented(
        "docs/metering.md", "| name | type | default | meaning |"
    )
    assert len(names) > 40
    assert names - set(CASES) == set(), "documented but not checked here"
    assert set(CASES) - names == set(), "checked here but not documented"


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_variable_changes_its_setting(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    default = load_settings(monkeypatch, case.also)[case.setting]
    value = load_settings(monkeypatch, {**case.also, name: case.value})[case.setting]
    check: Callable[[Any], bool] = case.expected if callable(case.expected) else case.expected.__eq__
    assert check(value), value
    assert value != default


@pytest.mark.parametrize("name", sorted(name for name, case in CASES.items() if case.bad is not None))
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    assert case.bad is not None
    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings(monkeypatch, {**case.also, name: case.bad})


METERING = {
    "METERING_CLAIM_IDLE_SECONDS": "30",
    "METERING_DRAIN_BUDGET_SECONDS": "2.5",
    "METERING_DEAD_STREAM": "usage:dead:b",
    "METERING_MAX_DELIVERIES": "3",
    "METERING_DEAD_STREAM_MAXLEN": "5000",
    "METERING_STALE_MARGIN_SECONDS": "60",
    "METERING_RECONCILE_HOURS": "6",
    "METERING_LAST_USED_RESOLUTION_SECONDS": "10",
}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_metering_reads_its_settings_from_the_environment() -> None:
    """What the drain, reconciliation and retention use, in a fresh process started with these variables."""
    code = (
        "import django, json; django.setup(); from metering import conf; print(json.dumps(["
        "conf.claim_idle_ms(), conf.drain_budget_seconds(), conf.dead_stream(), conf.max_deliveries(),"
        "conf.dead_stream_maxlen(), conf.stale_after_seconds(), conf.reconcile_hours(),"
        "conf.last_used_resolution_ms()]))"
    )
    result = run_python(code, {**METERING, "GATEWAY_TOTAL_TIMEOUT": "100"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [30_000, 2.5, "usage:dead:b", 3, 5000, 160.0, 6, 10_000]


def test_a_bad_metering_value_stops_start_up_naming_the_variable() -> None:
    result = run_python(
        "from django.conf import settings; print(settings.METERING_MAX_DELIVERIES)", {"METERING_MAX_DELIVERIES": "five"}
    )
    assert result.returncode != 0
    assert "METERING_MAX_DELIVERIES must be an integer" in result.stderr
