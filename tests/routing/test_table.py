"""The routing table the gateway keeps in memory: what is in it, and that building it costs two queries."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from routing.table import RoutingTable, aload_routing_table, load_routing_table
from tests.factories import ModelAliasFactory, RouterPoolFactory, RouterTargetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ROUTER_KEY", "secret-router-key")
    oss = RouterPoolFactory(slug="oss-20b")
    RouterTargetFactory(pool=oss, name="a", weight=2)
    RouterTargetFactory(pool=oss, name="b")
    RouterTargetFactory(pool=oss, name="off", enabled=False)
    RouterTargetFactory(pool=oss, name="leaving", draining=True)
    ModelAliasFactory(alias="gpt-oss-20b", pool=oss, weight=1, upstream_model="openai/gpt-oss-20b")
    ModelAliasFactory(alias="retired", pool=oss, enabled=False)
    closed = RouterPoolFactory(slug="closed", enabled=False)
    RouterTargetFactory(pool=closed, name="c")
    ModelAliasFactory(alias="gemma-4-26b", pool=closed, weight=2)


@pytest.mark.usefixtures("fleet")
def test_only_enabled_aliases_and_the_targets_that_may_take_requests_are_in_the_table() -> None:
    table = load_routing_table()
    assert table.aliases() == ["gemma-4-26b", "gpt-oss-20b"]
    route = table.route("gpt-oss-20b")
    assert route is not None
    assert [t.name for t in route.targets] == ["a", "b"]
    assert [t.weight for t in route.targets] == [2, 1]
    assert route.upstream_name == "openai/gpt-oss-20b"
    assert table.route("retired") is None, "a disabled alias answers model_not_found"
    closed = table.route("gemma-4-26b")
    assert closed is not None and closed.targets == () and closed.weight == 2, "a disabled pool has no backend"


@pytest.mark.usefixtures("fleet")
def test_the_router_key_is_read_from_its_variable_and_never_printed() -> None:
    route = load_routing_table().route("gpt-oss-20b")
    assert route is not None
    assert route.targets[0].api_key == "secret-router-key"
    assert "secret-router-key" not in repr(route)


@pytest.mark.usefixtures("fleet")
def test_loading_costs_two_queries_however_big_the_fleet() -> None:
    with CaptureQueriesContext(connection) as queries:
        load_routing_table()
    assert len(queries) == 2


@pytest.mark.usefixtures("fleet")
@pytest.mark.django_db(transaction=True)
def test_the_async_loader_gives_the_same_table() -> None:
    async def load() -> RoutingTable:
        try:
            return await aload_routing_table()
        finally:
            await sync_to_async(connections.close_all)()  # the ORM's worker thread keeps its own connection

    assert dict(asyncio.run(load()).routes) == dict(load_routing_table().routes)
