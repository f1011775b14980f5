"""Inference keys belong to the organization and its applications, not to the person who made them: when their
creator is removed, the keys they made for calling models keep working at the gateway (only the management rights
of their keys end with the membership, tests/apikeys/test_management_rights.py)."""

from __future__ import annotations

import httpx
import pytest

from accounts.models import Membership, Organization, User
from accounts.services import membership_remove
from apikeys.models import ApiKey
from tests.factories import issue_key, verified
from tests.gateway.conftest import Catalog, ServerThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHAT = {"model": "gpt-oss-20b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2}


def test_a_removed_members_inference_keys_keep_working(
    gateway_server: ServerThread, catalog: Catalog, org: Organization, owner: User, admin_user: User
) -> None:
    verified(admin_user)
    inference_key, inference = issue_key(org, admin_user, name="chatbot", scopes=["inference"])
    both_key, both = issue_key(org, admin_user, name="ci", scopes=["inference", "manage"])

    def chat(secret: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {secret}"}
        return httpx.post(f"{gateway_server.url}/v1/chat/completions", json=CHAT, headers=headers, timeout=30)

    assert chat(inference).status_code == 200 and chat(both).status_code == 200  # both cached by the gateway now
    membership_remove(
        actor_membership=Membership.objects.get(user=owner, organization=org),
        membership=Membership.objects.get(user=admin_user, organization=org),
    )
    assert ApiKey.objects.get(pk=both_key.pk).scopes == ["inference"]  # type: ignore[attr-defined]
    for secret in (inference, both):
        response = chat(secret)
        assert response.status_code == 200, response.text
    assert ApiKey.objects.get(pk=inference_key.pk).status == "active"  # type: ignore[attr-defined]
