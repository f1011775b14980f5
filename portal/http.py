from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """Every request once HtmxMiddleware (settings.MIDDLEWARE) has run: `htmx` says whether htmx sent it.

    django-htmx's documented way to type `request.htmx`; views annotate this (or accounts.http.AuthedRequest,
    which extends it) instead of silencing mypy at each use.
    """

    htmx: HtmxDetails
