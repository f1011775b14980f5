"""The management API (/api/v1: keys, usage, the request log) against the schema it serves at /api/schema/
(drf-spectacular), fuzzed with schemathesis over HTTP against a live server, as an owner's manage-scoped key."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from tests.contract.conftest import contract_config
from tests.factories import issue_key
from tests.gateway.conftest import Catalog

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUEST_ID_IN_URL = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # RequestViewSet.lookup_value_regex


def served_schema() -> dict[str, Any]:
    """The document /api/schema/ serves, fetched through Django at collection (it reads no database)."""
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content[:300]
    return dict(json.loads(response.content))


management = schemathesis.openapi.from_dict(served_schema(), config=contract_config(25))


def steer(case: Any, victim_id: int, request_id: str) -> None:
    """Random ids would all be 404s: two cases in three name a real key (never the one the calls are made with, so a
    fuzzed revoke cannot lock the run out) or a real request id, so updates, revokes and rotations really happen."""
    parameters = case.path_parameters or {}
    digest = hashlib.sha256(repr(sorted(parameters.items())).encode()).digest()
    if "request_id" in parameters and not REQUEST_ID_IN_URL.match(str(parameters["request_id"])):
        # Outside the URL's pattern Django answers its HTML 404 (test_an_unknown_api_path_answers_json below).
        parameters["request_id"] = "x" + digest.hex()[:20]
    if "id" in parameters and any(char in str(parameters["id"]) for char in "./"):
        parameters["id"] = int.from_bytes(digest[:3])  # "6.4e-257" does not reach the view either: the same 404 page
    if digest[0] % 3 == 0:
        return
    if "id" in parameters:
        parameters["id"] = victim_id
    if "request_id" in parameters:
        parameters["request_id"] = request_id


def a_refusal_names_its_field(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 400 names each field at fault (`{"metadata.team": ["..."]}`, or `non_field_errors`): the caller must learn
    what to change. Only a body that is not JSON at all (schemathesis sends some bytes that are not UTF-8) has no
    field to name, and gets DRF's `detail` saying so."""
    if response.status_code != 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and body, f"a 400 without field errors: {response.text[:300]}"
    if set(body) == {"detail"}:
        assert str(body["detail"]).startswith("JSON parse error"), f"a 400 that names no field: {response.text[:300]}"
        return True
    assert all(isinstance(name, str) for name in body), f"a field error without a name: {body}"  # "" is a key too
    return True


@pytest.fixture
def keys(contract_catalog: Catalog) -> dict[str, Any]:
    from apikeys.models import Scope

    _, manage = issue_key(contract_catalog.org, contract_catalog.owner, name="contract", scopes=[Scope.MANAGE])
    victim, _ = issue_key(contract_catalog.org, contract_catalog.owner, name="victim")
    return {"manage": manage, "victim_id": victim.pk}  # type: ignore[attr-defined]


@management.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_the_management_api_answers_as_its_schema_says(case: Any, live_server_url: str, keys: dict[str, Any]) -> None:
    steer(case, keys["victim_id"], "req_01KBAD0000000000000000000Z")
    case.call_and_validate(
        base_url=live_server_url,
        headers={"Authorization": f"Bearer {keys['manage']}"},
        # Checked: no server error, documented status codes, content types, headers and response bodies. Not checked:
        # whether the serializers accept exactly what the generated schema allows (drf-spectacular cannot say that
        # precisely: strict serializers refuse unknown fields, a revoked key cannot be rotated).
        excluded_checks=[checks.negative_data_rejection, checks.positive_data_acceptance],
        additional_checks=[a_refusal_names_its_field],
    )


def test_an_unknown_api_path_answers_json(live_server_url: str, keys: dict[str, Any]) -> None:
    import httpx

    response = httpx.get(
        f"{live_server_url}/api/v1/requests/r%C3%A9q", headers={"Authorization": f"Bearer {keys['manage']}"}
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
