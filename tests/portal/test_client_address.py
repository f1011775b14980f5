"""Whose address a request is counted under (portal/client_address.py, shared by the gateway and Django): the peer's,
unless the peer is a trusted proxy; then the right-most X-Forwarded-For entry that is not a trusted proxy."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings as SettingsWrapper

from portal.client_address import TrustedProxies, meta_client_address, scope_client_address
from portal.env import env_networks

PROXY = "10.0.0.2"


def scope(peer: str, *forwarded_for: bytes) -> dict[str, object]:
    headers = [(b"host", b"portal.example.com"), *((b"x-forwarded-for", value) for value in forwarded_for)]
    return {"type": "http", "client": (peer, 51234), "headers": headers}


def test_without_trusted_proxies_the_header_is_never_believed(settings: SettingsWrapper) -> None:
    settings.TRUSTED_PROXIES = []
    # Not even from loopback, which uvicorn's own handling believed.
    assert scope_client_address(scope("127.0.0.1", b"203.0.113.9")) == "127.0.0.1"
    assert meta_client_address({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "127.0.0.1"


def test_a_spoofed_header_from_a_peer_that_is_not_a_trusted_proxy_is_ignored(settings: SettingsWrapper) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    assert scope_client_address(scope("198.51.100.7", b"203.0.113.9")) == "198.51.100.7"
    assert meta_client_address({"REMOTE_ADDR": "198.51.100.7", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}) == "198.51.100.7"


def test_behind_a_trusted_proxy_the_client_it_names_is_used(settings: SettingsWrapper) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert scope_client_address(scope(PROXY, b"203.0.113.9")) == "203.0.113.9"
    assert meta_client_address({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.9"}) == "203.0.113.9"
    assert scope_client_address(scope(PROXY)) == PROXY  # no header: the proxy's own request


def test_what_a_client_wrote_left_of_the_proxies_entries_does_not_count(settings: SettingsWrapper) -> None:
    """A proxy that appends: the client sent `X-Forwarded-For: 1.1.1.1`, the outer proxy (10.0.0.3) added the
    client's real address, the inner one (10.0.0.2, the peer) added the outer one's."""
    settings.TRUSTED_PROXIES = ["10.0.0.2", "10.0.0.3"]
    assert scope_client_address(scope(PROXY, b"1.1.1.1, 203.0.113.9, 10.0.0.3")) == "203.0.113.9"
    # The same header sent twice is one list, in order (RFC 9110).
    assert scope_client_address(scope(PROXY, b"1.1.1.1, 203.0.113.9", b"10.0.0.3")) == "203.0.113.9"


def test_an_entry_that_is_no_address_falls_back_to_the_peer(settings: SettingsWrapper) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert scope_client_address(scope(PROXY, b"not-an-address")) == PROXY
    assert scope_client_address(scope(PROXY, b"")) == PROXY


@pytest.mark.parametrize(
    ("header", "client"),
    [
        ("2001:db8::7", "2001:db8::7"),
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("203.0.113.9:51234", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        (" 203.0.113.9 ", "203.0.113.9"),
    ],
)
def test_addresses_are_read_as_proxies_write_them(settings: SettingsWrapper, header: str, client: str) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]
    assert meta_client_address({"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": header}) == client


def test_a_request_that_only_crossed_trusted_hosts_is_counted_at_the_first() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client(PROXY, "10.1.2.3, 10.0.0.3") == "10.1.2.3"


def test_trusted_proxies_are_read_from_the_environment_and_a_typo_is_named() -> None:
    assert env_networks("TRUSTED_PROXIES", [], environ={}) == []
    assert env_networks("TRUSTED_PROXIES", [], environ={"TRUSTED_PROXIES": "10.0.0.2, 10.1.0.0/16,::1"}) == [
        "10.0.0.2/32",
        "10.1.0.0/16",
        "::1/128",
    ]
    with pytest.raises(ImproperlyConfigured, match=r"TRUSTED_PROXIES .*'10\.0\.0\.300' is neither"):
        env_networks("TRUSTED_PROXIES", [], environ={"TRUSTED_PROXIES": "10.0.0.2,10.0.0.300"})
