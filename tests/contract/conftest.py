"""Contract fixtures: a live server (portal + gateway in one ASGI app, tests/gateway/conftest.py) with a catalog whose
limits are out of the fuzzer's reach, and keys to call it with."""

from __future__ import annotations

import os
from typing import Any

import pytest
from schemathesis.config import SchemathesisConfig

from accounts.models import Organization, User
from tests.conftest import Sandbox
from tests.gateway.conftest import Catalog, catalog, gateway_server, gw, make_catalog

__all__ = ["catalog", "gateway_server", "gw"]  # the live server and its client, shared with the gateway's tests


def contract_config(max_examples: int) -> SchemathesisConfig:
    """Bounded so the contract suite stays well under three minutes on two cores: the documents' examples, the
    boundary values of every field (the coverage phase), then `max_examples` generated cases per operation.
    CONTRACT_MAX_EXAMPLES=1000 digs deeper by hand."""
    max_examples = int(os.environ.get("CONTRACT_MAX_EXAMPLES", max_examples))
    return SchemathesisConfig.from_str(f'[generation]\nmax-examples = {max_examples}\ndatabase = "none"\n')


@pytest.fixture
def contract_catalog(transactional_db: Any, sandbox: Sandbox, org: Organization, owner: User) -> Catalog:
    """The gateway's test catalog with limits no fuzzing run reaches, so cases get past admission to the backend."""
    return make_catalog(
        sandbox, org, owner, key_rate_requests=1_000_000, short_requests=1_000_000, weekly_requests=10_000_000
    )
