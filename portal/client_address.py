"""The client's address, for the gateway (its invalid-key limiter) and for Django (sign-in rate limits, audit rows).

The connection's peer is the client unless the peer is one of TRUSTED_PROXIES; then the client is the right-most
address of `X-Forwarded-For` that is not a trusted proxy: each proxy appends the address it was reached from, so the
entries left of the first untrusted one were written by whoever sent the request and prove nothing. With
TRUSTED_PROXIES empty (the default) the header is never read: a client cannot choose the address its limits count
under by writing one. An entry that is not an address means the header did not come from a proxy we trust (one
passed on what the client sent): the peer's address is used then.

On the gateway's path for every request: with no trusted proxy it is one falsy check; behind one, each (peer,
header) pair is worked out once and remembered.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from portal.settings_cache import SettingsCache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_REMEMBERED = 10_000  # distinct peers and headers kept; past it the memory starts over (clients choose them)


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: `203.0.113.7`, `2001:db8::7`, `[2001:db8::7]:443`, `203.0.113.7:51234`."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:203.0.113.7 from a dual-stack socket is 203.0.113.7
    return address


class TrustedProxies:
    def __init__(self, entries: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
        self._trusted: dict[str, bool] = {}
        self._clients: dict[tuple[str, str], str] = {}

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        known = self._trusted.get(address)
        if known is None:
            parsed = parse_address(address)
            known = parsed is not None and any(parsed in network for network in self.networks)
            if len(self._trusted) >= MAX_REMEMBERED:
                self._trusted.clear()
            self._trusted[address] = known
        return known

    def client(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address, given the connection's peer and the X-Forwarded-For header (None when absent)."""
        if not self.networks or not forwarded_for or not self.trusts(peer):
            return peer
        key = (peer, forwarded_for)
        client = self._clients.get(key)
        if client is None:
            client = self._walk(peer, forwarded_for)
            if len(self._clients) >= MAX_REMEMBERED:
                self._clients.clear()
            self._clients[key] = client
        return client

    def _walk(self, peer: str, forwarded_for: str) -> str:
        hops = forwarded_for.split(",")
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return peer
            text = str(address)
            if not self.trusts(text):
                return text
        return str(parse_address(hops[0]))  # every hop is a trusted proxy: the request began at the first


TRUSTED = SettingsCache(lambda: TrustedProxies(settings.TRUSTED_PROXIES))


def scope_client_address(scope: Mapping[str, Any]) -> str:
    """The client's address of an ASGI request ("" when the server gives none)."""
    client = scope.get("client")
    peer = str(client[0]) if isinstance(client, (tuple, list)) and client else ""
    proxies = TRUSTED.get()
    if not proxies.networks or not proxies.trusts(peer):  # an attribute, not __bool__: a call less per request
        return peer
    values = [value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    return proxies.client(peer, b",".join(values).decode("latin-1") if values else None)


def meta_client_address(meta: Mapping[str, Any]) -> str:
    """The client's address of a Django request, from its META (REMOTE_ADDR; repeated headers are joined by ",")."""
    peer = str(meta.get("REMOTE_ADDR") or "")
    proxies = TRUSTED.get()
    if not proxies:
        return peer
    return proxies.client(peer, meta.get("HTTP_X_FORWARDED_FOR"))
