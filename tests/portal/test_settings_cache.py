"""Settings the request path reads once: a changed setting is seen at once, an unchanged one is not rebuilt."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

from gateway.upstream import request_timeouts
from portal.settings_cache import SettingsCache


def test_a_changed_setting_is_seen_at_once_and_an_unchanged_one_is_built_once(settings: Any) -> None:
    builds = []
    cache = SettingsCache(lambda: builds.append(1) or django_settings.GATEWAY_MAX_BODY_BYTES)
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    assert (cache.get(), cache.get()) == (1000, 1000)
    assert len(builds) == 1
    settings.GATEWAY_MAX_BODY_BYTES = 2000
    assert cache.get() == 2000
    assert len(builds) == 2


def test_the_gateway_timeouts_follow_the_settings(settings: Any) -> None:
    settings.GATEWAY_FIRST_BYTE_TIMEOUT = 0.25
    assert request_timeouts().read == 0.25
    settings.GATEWAY_FIRST_BYTE_TIMEOUT = 3
    assert request_timeouts().read == 3.0
