"""Metering fixtures: a default plan, a key of Acme, a usage stream of this test alone, and clean counters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from django.conf import settings

from accounts.models import Organization, User
from billing.models import Plan
from portal.redis import reset_clients, sync_redis
from tests.factories import DefaultPlanFactory, issue_key, verified

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs a real Redis: set REDIS_URL")


@pytest.fixture
def plan(db: Any) -> Plan:
    return DefaultPlanFactory(key_rate_requests=60)


@pytest.fixture
def key(org: Organization, owner: User, plan: Plan) -> Any:
    """An inference key of Acme (Acme on the default plan)."""
    api_key, _ = issue_key(org, verified(owner), name="metering test")
    return api_key


@dataclass
class Stream:
    """A usage stream, consumer group and dead-letter stream of one test: nothing shared with the gateway's."""

    client: redis.Redis
    name: str
    group: str
    dead: str

    def drain_kwargs(self) -> dict[str, Any]:
        return {"stream": self.name, "group": self.group, "dead_stream": self.dead}

    def publish(self, events: list[Any]) -> list[str]:
        return [self.client.xadd(self.name, event.to_fields()).decode() for event in events]  # type: ignore[union-attr]

    def pending(self) -> int:
        try:
            return int(self.client.xpending(self.name, self.group)["pending"])
        except redis.ResponseError:
            return 0


@pytest.fixture
def stream() -> Iterator[Stream]:
    if not settings.REDIS_URL:
        pytest.skip("needs a real Redis: set REDIS_URL")
    reset_clients()
    client = sync_redis()
    assert client is not None
    tag = uuid.uuid4().hex[:12]
    names = Stream(client, f"metering-test:{tag}:events", "metering", f"metering-test:{tag}:dead")
    yield names
    client.delete(names.name, names.dead)
