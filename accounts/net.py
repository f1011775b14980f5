from __future__ import annotations

from django.http import HttpRequest

from portal.client_address import meta_client_address


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from: the connection's peer, or behind a proxy listed in TRUSTED_PROXIES the
    client's address it recorded in X-Forwarded-For (portal/client_address.py, shared with the gateway)."""
    return meta_client_address(request.META) or None
