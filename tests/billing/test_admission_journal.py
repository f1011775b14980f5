"""Admission with a journal entry: the booking and the stream entry happen together or not at all."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings as django_settings

from billing.admission.memory_engine import MemoryAdmissionEngine
from billing.admission.types import AdmissionEngine, Journal, Limit
from tests.billing.conftest import Run

T0 = 1_800_000_000_000
TWO_PER_MINUTE = [Limit(name="key_rate", key="key:1:rate", limit=2, window_ms=60_000)]


# The conftest's engine fixture, Redis only: the in-process engine has its own test at the end.
redis_engine_only = pytest.mark.parametrize("engine", ["redis"], indirect=True)


@pytest.fixture
def stream() -> Iterator[str]:
    name = f"journal-test:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(django_settings.REDIS_URL).delete(name)


def entries(stream: str) -> list[bytes]:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    return [fields[b"e"] for _, fields in client.xrange(stream)]


@redis_engine_only
def test_an_admitted_request_has_its_entry_and_a_refused_one_has_none(
    engine: AdmissionEngine, scope: str, stream: str, run: Run
) -> None:
    decisions = [
        run(
            engine.admit(
                scope=scope,
                limits=TWO_PER_MINUTE,
                cost=1,
                now_ms=T0 + step,
                journal=Journal(stream=stream, field="e", value=f"request-{step}", maxlen=1000),
            )
        )
        for step in range(3)
    ]

    assert [d.admitted for d in decisions] == [True, True, False]
    assert [d.journaled for d in decisions] == [True, True, False]
    assert entries(stream) == [b"request-0", b"request-1"]
    # The refusal consumed nothing: the counter holds the two admitted units only.
    assert decisions[2].states[0].used == 2


@redis_engine_only
def test_without_a_journal_nothing_is_written(engine: AdmissionEngine, scope: str, stream: str, run: Run) -> None:
    decision = run(engine.admit(scope=scope, limits=TWO_PER_MINUTE, cost=1, now_ms=T0))
    assert decision.admitted and not decision.journaled
    assert entries(stream) == []


def test_the_in_process_engine_leaves_the_entry_to_its_caller(run: Run) -> None:
    decision = run(
        MemoryAdmissionEngine().admit(
            scope="9",
            limits=TWO_PER_MINUTE,
            cost=1,
            now_ms=T0,
            journal=Journal(stream="unused", field="e", value="x", maxlen=10),
        )
    )
    assert decision.admitted and not decision.journaled
