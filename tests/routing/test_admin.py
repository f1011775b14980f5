"""The operators' admin for routing: what it shows (never a key), and actions that reach the gateway at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from portal.invalidation import add_local_listener, remove_local_listener
from routing.models import HealthStatus, ModelAlias, RouterTarget
from tests.factories import ModelAliasFactory, OperatorFactory, RouterPoolFactory, RouterTargetFactory

pytestmark = pytest.mark.django_db
SECRET = "sk-router-very-secret-0042"


@pytest.fixture
def operator(client: Client) -> Client:
    client.force_login(OperatorFactory())
    return client


@pytest.fixture
def published() -> Iterator[list[tuple[str, str]]]:
    messages: list[tuple[str, str]] = []

    def listener(topic: str, ident: str) -> None:
        messages.append((topic, ident))

    add_local_listener(listener)
    yield messages
    remove_local_listener(listener)


@pytest.fixture
def target(monkeypatch: pytest.MonkeyPatch) -> RouterTarget:
    monkeypatch.setenv("TEST_ROUTER_KEY", SECRET)
    pool = RouterPoolFactory(slug="oss-20b", name="OSS 20B dedicated")
    ModelAliasFactory(alias="gpt-oss-20b", pool=pool)
    return RouterTargetFactory(
        pool=pool,
        name="router-a",
        health_status=HealthStatus.UNHEALTHY,
        latency_ms=812.0,
        last_error="HTTP 503 on /api/v1/ping",
        last_probed_at=timezone.now(),
    )


def test_the_pool_page_shows_targets_with_their_health_and_whether_the_key_is_set_but_not_the_key(
    operator: Client, target: RouterTarget
) -> None:
    page = operator.get(reverse("admin:routing_routerpool_change", args=[target.pool_id]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "router-a" in html and "TEST_ROUTER_KEY" in html
    assert "Unhealthy, 812 ms" in html and "HTTP 503 on /api/v1/ping" in html
    assert 'alt="True"' in html  # the "key set" icon
    assert SECRET not in html


def test_the_target_list_shows_health_and_never_the_key(operator: Client, target: RouterTarget) -> None:
    page = operator.get(reverse("admin:routing_routertarget_changelist"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "oss-20b/router-a" in html and "Unhealthy" in html
    assert SECRET not in html


def test_a_key_variable_that_is_not_set_shows_as_missing(operator: Client, target: RouterTarget) -> None:
    RouterTarget.objects.filter(pk=target.pk).update(api_key_env="TEST_UNSET_ROUTER_KEY")
    html = operator.get(reverse("admin:routing_routertarget_changelist")).content.decode()
    assert 'alt="False"' in html


@pytest.mark.parametrize(
    ("action", "start", "end"),
    [
        ("drain", {}, {"draining": True, "enabled": True}),
        ("undrain", {"draining": True}, {"draining": False}),
        ("disable", {}, {"enabled": False}),
        ("enable", {"enabled": False, "draining": True}, {"enabled": True, "draining": False}),
    ],
)
def test_target_actions_change_it_audit_it_and_tell_the_gateway(
    operator: Client,
    target: RouterTarget,
    published: list[tuple[str, str]],
    django_capture_on_commit_callbacks: Any,
    action: str,
    start: dict[str, bool],
    end: dict[str, bool],
) -> None:
    RouterTarget.objects.filter(pk=target.pk).update(**start)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            reverse("admin:routing_routertarget_changelist"), {"action": action, "_selected_action": [target.pk]}
        )
    assert response.status_code == 302
    target.refresh_from_db()
    assert {name: getattr(target, name) for name in end} == end
    assert published == [("routing", "")]
    event = AuditEvent.objects.get(action=f"routing.target.{action}")
    assert event.actor is not None and event.actor.email == "ops@example.com"
    assert event.target == "oss-20b/router-a"


def test_an_alias_edit_reaches_the_gateway(
    operator: Client, target: RouterTarget, published: list[tuple[str, str]], django_capture_on_commit_callbacks: Any
) -> None:
    alias = ModelAlias.objects.get(alias="gpt-oss-20b")
    form = {
        "alias": "gpt-oss-20b",
        "pool": target.pool_id,
        "family": "oss",
        "weight": 3,
        "upstream_model": "",
        "prompt_template": "{role}: {content}\n",
        "enabled": "on",
        "description": "Fast open model",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(reverse("admin:routing_modelalias_change", args=[alias.pk]), form)
    assert response.status_code == 302
    alias.refresh_from_db()
    assert alias.weight == 3
    assert published == [("routing", "")]
    assert AuditEvent.objects.filter(action="routing.alias.update", target="gpt-oss-20b").exists()


def test_a_cortensor_target_without_a_session_is_refused_with_a_reason(operator: Client, target: RouterTarget) -> None:
    form = {"pool": target.pool_id, "name": "router-b", "base_url": "http://10.0.0.9:8100", "protocol": "cortensor"}
    form |= {"api_key_env": "TEST_ROUTER_KEY", "weight": 1, "enabled": "on"}
    response = operator.post(reverse("admin:routing_routertarget_add"), form)
    assert response.status_code == 200
    assert "A cortensor target needs a session id." in response.content.decode()
    assert not RouterTarget.objects.filter(name="router-b").exists()
