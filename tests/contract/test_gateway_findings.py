"""Gateway bugs the contract fuzzing found, pinned as strict expected failures until gateway/ is fixed (the lead's
code). Each names the request, what it gets, and what it should get."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.xfail(
    strict=True,
    reason="gateway/bodies.py check_chat: `message.get('role') not in ROLES` tests a list or object role for "
    "membership in a frozenset, which raises TypeError (unhashable); gateway/app.py catches it and answers 502 "
    "backend_error 'The gateway failed on this request.' instead of 400 invalid_request with param "
    "messages[0].role.",
)
@pytest.mark.parametrize("role", [[None, None], {"name": "user"}])
def test_a_list_or_object_as_a_message_role_is_a_400_naming_the_field(live_gateway: httpx.Client, role: object) -> None:
    response = live_gateway.post("/v1/chat/completions", json={"model": "gpt-oss-20b", "messages": [{"role": role}]})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].role"
