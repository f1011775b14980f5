"""Draining in real processes: a drainer killed with SIGKILL in the middle of a backlog, and a Celery worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest
from django.conf import settings

from apikeys.models import ApiKey
from metering.models import Granularity, UsageEvent, UsageRollup
from tests.conftest import ROOT, wait_until
from tests.metering.conftest import Stream
from tests.metering.events import lifecycle
from tests.metering.helpers import assert_rollups_exact

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def child_env() -> dict[str, str]:
    """This test's database (pytest-django's test_<name>) and Redis, for a child process."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: a child process cannot share an in-memory test database")
    host, port = database["HOST"] or "127.0.0.1", database["PORT"] or 5432
    url = f"postgres://{database['USER']}@{host}:{port}/{database['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "REDIS_URL": settings.REDIS_URL}


def publish_backlog(stream: Stream, org: Any, key: ApiKey, count: int) -> None:
    with stream.client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            for event in lifecycle(organization_id=org.pk, key_id=key.pk):
                pipe.xadd(stream.name, event.to_fields())  # type: ignore[arg-type]
        pipe.execute()


def drain_command(stream: Stream, *extra: str) -> list[str]:
    return [sys.executable, "manage.py", "drain_usage", "--stream", stream.name, "--group", stream.group, *extra]


def test_a_drainer_killed_mid_backlog_loses_nothing_and_duplicates_nothing(
    org: Any, key: ApiKey, stream: Stream
) -> None:
    publish_backlog(stream, org, key, 3000)
    env = child_env()
    victim = subprocess.Popen(
        drain_command(stream, "--forever", "--batch-size", "150"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: UsageEvent.objects.count() > 300, 60, "the first batches")
        os.kill(victim.pid, signal.SIGKILL)  # no chance to finish its batch or acknowledge it
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(timeout=10)
    assert UsageEvent.objects.count() < 3000, "the victim finished before it was killed; make the backlog larger"

    survivor = subprocess.run(
        drain_command(stream, "--claim-idle-seconds", "0"),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert "taken over" in survivor.stdout
    assert stream.pending() == 0
    assert UsageEvent.objects.filter(stage="completed", billed=True).count() == 3000
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.requests, day.billed_requests, day.cost_units, day.outcome_ok) == (3000, 3000, 3000, 3000)
    assert_rollups_exact()


def test_a_celery_worker_drains_the_stream(org: Any, key: ApiKey, stream: Stream) -> None:
    from metering.tasks import drain_usage_stream

    publish_backlog(stream, org, key, 20)
    queue = f"metering-test-{uuid.uuid4().hex[:8]}"  # this worker takes only this test's task
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "--pool",
            "solo",
            "-Q",
            queue,
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        drain_usage_stream.apply_async(kwargs={"stream": stream.name, "group": stream.group}, queue=queue)
        wait_until(lambda: UsageEvent.objects.filter(stage="completed").count() == 20, 60, "the worker's drain")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)

        for name in (f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", queue):
            stream.client.delete(name)  # only this test's queue: other tests' Celery state stays

    assert stream.pending() == 0
    assert_rollups_exact()
