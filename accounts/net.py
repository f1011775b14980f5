from __future__ import annotations

from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from. Behind a proxy, configure the proxy to set REMOTE_ADDR (e.g. uvicorn's
    --proxy-headers with --forwarded-allow-ips), rather than trusting X-Forwarded-For from anyone here."""
    address = request.META.get("REMOTE_ADDR") or None
    return address
