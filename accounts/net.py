from __future__ import annotations

import ipaddress

from django.http import HttpRequest

IPV6_NETWORK_PREFIX = 64  # one customer's IPv6 allocation is at least a /64: its addresses are one client


def client_ip(request: HttpRequest) -> str | None:
    """The address the request came from. Behind a proxy, configure the proxy to set REMOTE_ADDR (e.g. uvicorn's
    --proxy-headers with --forwarded-allow-ips), rather than trusting X-Forwarded-For from anyone here."""
    address = request.META.get("REMOTE_ADDR") or None
    return address


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
