"""Responses that carry a key's secret: no browser, proxy or CDN may keep a copy of them."""

from __future__ import annotations

from django.http.response import HttpResponseBase


def uncacheable[R: HttpResponseBase](response: R) -> R:
    """`no-store` for HTTP/1.1 caches; `Pragma: no-cache` for HTTP/1.0 proxies, which ignore Cache-Control."""
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response
