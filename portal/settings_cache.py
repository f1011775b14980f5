"""Settings read on every request, computed once: reading `django.conf.settings` goes through a Python-level
attribute hook each time, and the gateway's request path made eight such reads per request.

A `SettingsCache` holds what its function builds from settings until any setting changes (Django's
`setting_changed` signal, sent by `override_settings` and pytest-django's `settings` fixture), so tests that change
a setting see the new value at once. Settings do not change in a running server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed

_EMPTY = object()


class SettingsCache[T]:
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: Any = _EMPTY
        setting_changed.connect(self._forget, weak=False)

    def get(self) -> T:
        value = self._value
        if value is _EMPTY:
            value = self._value = self._build()
        return value

    def _forget(self, **_: Any) -> None:
        self._value = _EMPTY
