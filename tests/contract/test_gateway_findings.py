"""Gateway bugs the contract fuzzing found, kept as tests once fixed: each names the request and what it should get."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("role", [[None, None], {"name": "user"}])
def test_a_list_or_object_as_a_message_role_is_a_400_naming_the_field(live_gateway: httpx.Client, role: object) -> None:
    response = live_gateway.post("/v1/chat/completions", json={"model": "gpt-oss-20b", "messages": [{"role": role}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].role"
