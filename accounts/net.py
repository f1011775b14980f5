from __future__ import annotations

import ipaddress

from django.http import HttpRequest

from portal.client_address import meta_client_address

IPV6_NETWORK_PREFIX = 64  # one customer's IPv6 allocation is at least a /64: its addresses are one client


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from: the connection's peer, or behind a proxy listed in TRUSTED_PROXIES the
    client's address it recorded in X-Forwarded-For (portal/client_address.py, shared with the gateway)."""
    return meta_client_address(request.META) or None


def client_network(request: HttpRequest) -> str | None:
    """The client for rate limits: its IPv4 address, or its IPv6 /64 (anyone holding one IPv6 address can pick
    any other in the same /64, as allauth's own per-address limits assume)."""
    address = client_ip(request)
    if address is None:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{parsed}/{IPV6_NETWORK_PREFIX}", strict=False).network_address)
    return str(parsed)
