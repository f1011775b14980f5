"""Operational surface: liveness, readiness, security headers and the Content Security Policy."""

from __future__ import annotations

import pytest
from django.test import Client

from routing.models import HealthStatus, ModelAlias, RouterPool, RouterTarget

pytestmark = pytest.mark.django_db


def test_liveness_answers_without_touching_anything(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readiness_needs_a_healthy_target_in_every_serving_pool(client: Client) -> None:
    pool = RouterPool.objects.create(slug="p", name="P")
    ModelAlias.objects.create(alias="m", pool=pool)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["pools"] == {"ok": False, "detail": "no healthy target in: p"}
    target = RouterTarget.objects.create(pool=pool, name="t", base_url="http://127.0.0.1:9", session_id=1)
    assert client.get("/readyz").status_code == 200
    target.health_status = HealthStatus.UNHEALTHY
    target.save()
    assert client.get("/readyz").status_code == 503


def test_readiness_reports_redis(client: Client, settings: object) -> None:
    body = client.get("/readyz").json()
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True


def test_pages_carry_a_strict_content_security_policy(client: Client) -> None:
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts_without_the_nonce(client: Client) -> None:
    html = client.get("/accounts/login/").content.decode()
    import re

    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or "nonce=" in tag, tag


def test_api_docs_use_the_nonce_and_no_cdn(client: Client) -> None:
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert "googleapis" not in html and "cdn" not in html.lower()
    nonce = response["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in html
