"""What only the Redis engine has to get right: key layout and expiry, the script cache, losing Redis's data, and
Redis being unreachable."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings as django_settings
from pytest_django.fixtures import Settings as SettingsWrapper
from redis.crc import key_slot

from billing.admission import get_engine
from billing.admission import unavailable as unavailable_module
from billing.admission.memory_engine import MemoryAdmissionEngine
from billing.admission.redis_engine import RedisAdmissionEngine
from billing.admission.types import Limit
from billing.admission.window import bucket_label, bucket_width, clock_ms, expiry_ms
from portal.redis import reset_clients, sync_redis
from tests.billing.conftest import Run
from tests.billing.test_admission_contract import KEY_RATE, MINUTE, PLAN, SHORT, T0, WEEK, WEEKLY
from tests.conftest import free_port, stop_process, wait_until, wait_until_listening


@pytest.fixture
def engine() -> Iterator[RedisAdmissionEngine]:
    """The Redis engine on the configured Redis (the `scope` fixture cleans up after it)."""
    if not django_settings.REDIS_URL:
        pytest.skip("needs a real Redis: set REDIS_URL")
    reset_clients()
    yield RedisAdmissionEngine()


@pytest.fixture
def redis_engine() -> Iterator[RedisAdmissionEngine]:
    """The Redis engine, wherever the test points REDIS_URL."""
    reset_clients()
    yield RedisAdmissionEngine()
    reset_clients()


@pytest.fixture
def private_redis(settings: SettingsWrapper) -> Iterator[redis.Redis]:
    """A Redis server of this test alone, so it may flush scripts and data without touching anyone else's."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until_listening(port, process)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    reset_clients()
    client = sync_redis()
    assert client is not None
    yield client
    reset_clients()
    stop_process(process)


@pytest.fixture
def unreachable(settings: SettingsWrapper) -> Iterator[str]:
    """REDIS_URL names a port nobody listens on (with a password, to check it never reaches the logs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://:s3cret-pass@127.0.0.1:{port}/14"
    reset_clients()
    yield settings.REDIS_URL
    reset_clients()


@pytest.fixture
def every_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    # Warnings are throttled per process; each test here wants to see its own.
    monkeypatch.setattr(unavailable_module, "_last_warning", float("-inf"))


# Key layout and expiry


def test_an_organizations_counters_share_one_cluster_slot_and_expire_on_their_own(
    run: Run, engine: RedisAdmissionEngine, scope: str
) -> None:
    run(engine.admit(scope=scope, limits=PLAN, cost=1, now_ms=T0))
    run(
        engine.admit(
            scope=scope, limits=[Limit("key_rate", "key:43:rate", 3, MINUTE), SHORT, WEEKLY], cost=1, now_ms=T0
        )
    )

    client = sync_redis()
    assert client is not None
    keys = sorted(key.decode() for key in client.scan_iter(match=f"adm:{{org:{scope}}}:*"))
    assert keys == [f"adm:{{org:{scope}}}:{name}" for name in ("key:42:rate", "key:43:rate", "org:short", "org:weekly")]
    assert len({key_slot(key.encode()) for key in keys}) == 1
    # Each lives a little longer than the window its newest unit is counted in, and no longer.
    key_ttl = client.pttl(f"adm:{{org:{scope}}}:key:42:rate")
    weekly_ttl = client.pttl(f"adm:{{org:{scope}}}:org:weekly")
    assert MINUTE <= key_ttl <= MINUTE + MINUTE // 100 + 5_000
    assert WEEK <= weekly_ttl <= WEEK + WEEK // 100 + 5_000


def test_a_counter_lives_on_while_units_are_booked_into_newer_buckets(
    run: Run, engine: RedisAdmissionEngine, scope: str
) -> None:
    """On the real clock: a booking into a newer bucket pushes the expiry out; one into the newest bucket again
    leaves it where it was (the script skips the PEXPIRE then, which would set the same deadline)."""
    window = 6_000
    rate = [Limit("key_rate", "key:42:rate", 100, window)]
    width = bucket_width(window)
    client = sync_redis()
    assert client is not None
    key = f"adm:{{org:{scope}}}:key:42:rate"

    def book() -> tuple[int, int]:
        now = clock_ms()
        assert run(engine.admit(scope=scope, limits=rate, cost=1, now_ms=now)).admitted
        return now, client.pttl(key)

    first_at, first = book()
    assert first == pytest.approx(expiry_ms(bucket_label(first_at, window), window, first_at), abs=20)
    three_on = bucket_label(first_at, window) + 3 * width
    wait_until(lambda: bucket_label(clock_ms(), window) >= three_on, timeout=5, what="the clock to pass three buckets")
    later_at, later = book()  # three buckets on: the deadline moved with the newest bucket
    assert later == pytest.approx(expiry_ms(bucket_label(later_at, window), window, later_at), abs=20)
    assert later > first - (later_at - first_at) + width
    same_at, same = book()
    if bucket_label(same_at, window) == bucket_label(later_at, window):  # not if the clock just crossed a bucket
        assert same == pytest.approx(later - (same_at - later_at), abs=20)
    assert run(engine.status(scope=scope, limits=rate, now_ms=clock_ms()))[0].used >= 3


# The script cache and lost data


def test_it_reloads_its_script_when_redis_has_forgotten_it(run: Run, private_redis: redis.Redis) -> None:
    engine = RedisAdmissionEngine()
    assert run(engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0)).admitted

    private_redis.script_flush()  # what a restart or a failover to a fresh replica does

    second = run(engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0 + 1))
    assert second.admitted and [state.used for state in second.states] == [2, 2, 2]
    private_redis.script_flush()
    assert [state.used for state in engine.status_sync(scope="7", limits=PLAN, now_ms=T0 + 2)] == [2, 2, 2]


def test_counters_lost_with_redis_data_come_back_from_the_ledger(run: Run, private_redis: redis.Redis) -> None:
    engine = RedisAdmissionEngine()
    ledger = []
    for step in range(3):
        decision = run(engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0 + step))
        ledger.append((decision.admitted_at_ms, 1))

    private_redis.flushall()  # Redis restarted without persistence
    assert run(engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0 + 10)).admitted  # the key forgot its 3
    for limit in PLAN:
        engine.raise_sync(scope="7", limit=limit, events=[*ledger, (T0 + 10, 1)], now_ms=T0 + 20)

    refused = run(engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0 + 30))
    assert refused.refused_by == "key_rate"
    assert [state.used for state in refused.states] == [4, 4, 4]


# Redis unreachable


@pytest.mark.parametrize(
    ("policy", "admitted", "refused_by", "retry_after_ms"),
    [("fail_closed", False, "unavailable", 1000), ("fail_open", True, None, 0)],
)
def test_an_unreachable_redis_follows_the_policy_instead_of_raising(
    run: Run,
    redis_engine: RedisAdmissionEngine,
    unreachable: str,
    every_warning: None,
    caplog: pytest.LogCaptureFixture,
    policy: str,
    admitted: bool,
    refused_by: str | None,
    retry_after_ms: int,
) -> None:
    with caplog.at_level(logging.WARNING, logger="billing.admission"):
        decision = run(redis_engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0, on_unavailable=policy))

    assert decision.degraded
    assert (decision.admitted, decision.refused_by, decision.retry_after_ms) == (admitted, refused_by, retry_after_ms)
    assert all(state.degraded for state in decision.states)
    assert "unreachable" in caplog.text and "admit" in caplog.text
    assert "s3cret-pass" not in caplog.text


@pytest.mark.parametrize(("setting", "admitted"), [("fail_closed", False), ("fail_open", True)])
def test_the_setting_decides_when_the_caller_does_not(
    run: Run,
    redis_engine: RedisAdmissionEngine,
    unreachable: str,
    settings: SettingsWrapper,
    setting: str,
    admitted: bool,
) -> None:
    settings.ADMISSION_ON_UNAVAILABLE = setting

    decision = run(redis_engine.admit(scope="7", limits=PLAN, cost=1, now_ms=T0))

    assert decision.degraded and decision.admitted is admitted


def test_reads_and_refunds_survive_an_unreachable_redis(
    run: Run, redis_engine: RedisAdmissionEngine, unreachable: str
) -> None:
    states = redis_engine.status_sync(scope="7", limits=PLAN, now_ms=T0)
    async_states = run(redis_engine.status(scope="7", limits=PLAN, now_ms=T0))
    refunded = run(redis_engine.refund(scope="7", limits=PLAN, cost=1, admitted_at_ms=T0))

    assert refunded is False  # said, so the caller can leave the refund to metering
    assert states == async_states
    assert [(state.used, state.remaining, state.degraded) for state in states] == [
        (0, 3, True),
        (0, 5, True),
        (0, 8, True),
    ]


def test_a_redis_that_accepts_but_never_answers_is_given_up_on_quickly(
    run: Run, redis_engine: RedisAdmissionEngine, settings: SettingsWrapper
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes handshakes; nobody ever reads or writes
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/14"
        reset_clients()
        started = time.monotonic()

        decision = run(redis_engine.admit(scope="7", limits=PLAN, cost=1, on_unavailable="fail_closed"))

        assert decision.degraded and decision.refused_by == "unavailable"
        assert time.monotonic() - started < 5  # portal/redis.py's 1 s socket timeout, not a hung request


def test_an_unknown_policy_is_a_programming_error(
    run: Run, redis_engine: RedisAdmissionEngine, unreachable: str
) -> None:
    with pytest.raises(ValueError):
        run(redis_engine.admit(scope="7", limits=PLAN, cost=1, on_unavailable="fail_sideways"))


# Choosing the engine


def test_the_engine_is_redis_when_redis_is_configured_and_in_process_otherwise(settings: SettingsWrapper) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:6379/14"
    with_redis = get_engine()
    settings.REDIS_URL = ""
    embedded = get_engine()

    assert isinstance(with_redis, RedisAdmissionEngine) and with_redis is not embedded
    assert isinstance(embedded, MemoryAdmissionEngine) and get_engine() is embedded
    settings.REDIS_URL = "redis://127.0.0.1:6379/14"
    assert get_engine() is with_redis


def test_a_refused_request_writes_nothing_to_redis(run: Run, engine: RedisAdmissionEngine, scope: str) -> None:
    decision = run(engine.admit(scope=scope, limits=[KEY_RATE], cost=4, now_ms=T0))

    client = sync_redis()
    assert client is not None
    assert not decision.admitted
    assert list(client.scan_iter(match=f"adm:{{org:{scope}}}:*")) == []
