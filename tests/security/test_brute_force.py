"""Guessing is slowed down: password sign-in (allauth's rate limits: per client address, and per account from that
address, so a guesser never locks the owner out) and Sign-In with Ethereum."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from eth_account import Account

from accounts.models import User
from tests.factories import TEST_PASSWORD, verified

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-1"
ALICE = Account.from_key("0x" + "33" * 32)


def sign_in(client: Client, email: str, password: str, ip: str = "198.51.100.7") -> tuple[int, str]:
    response = client.post("/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=ip)
    return response.status_code, response.content.decode()


def test_five_wrong_passwords_from_one_address_refuse_that_address_even_the_right_one(owner: User) -> None:
    verified(owner)
    guesser = Client()
    for _ in range(5):
        status, page = sign_in(guesser, owner.email, WRONG)
        assert status == 200
        assert "not correct" in page
    _, page = sign_in(guesser, owner.email, TEST_PASSWORD)
    assert "Too many failed login attempts" in page
    assert "_auth_user_id" not in guesser.session


def test_wrong_passwords_from_one_address_do_not_lock_the_owner_out_from_another(owner: User) -> None:
    """Anyone can type a victim's email: counting failures per account alone let a stranger lock the owner out."""
    verified(owner)
    guesser = Client()
    for _ in range(20):
        sign_in(guesser, owner.email, WRONG, ip="198.51.100.66")
    assert "Too many failed login attempts" in sign_in(guesser, owner.email, TEST_PASSWORD, ip="198.51.100.66")[1]
    the_owner = Client()
    status, _ = sign_in(the_owner, owner.email, TEST_PASSWORD, ip="203.0.113.99")
    assert status == 302
    assert the_owner.session["_auth_user_id"] == str(owner.pk)


def test_addresses_of_one_ipv6_network_count_as_one_client(owner: User) -> None:
    verified(owner)
    guesser = Client()
    for n in range(5):
        sign_in(guesser, owner.email, WRONG, ip=f"2001:db8:5:7::{n + 1:x}")
    _, page = sign_in(guesser, owner.email, TEST_PASSWORD, ip="2001:db8:5:7::ff")
    assert "Too many failed login attempts" in page
    status, _ = sign_in(Client(), owner.email, TEST_PASSWORD, ip="2001:db8:9:9::1")
    assert status == 302


def test_one_address_guessing_many_accounts_is_stopped(db: None) -> None:
    client = Client()
    statuses = [sign_in(client, f"victim{n}@example.com", WRONG)[0] for n in range(12)]
    pages = [sign_in(client, "another@example.com", WRONG)[1]]
    assert statuses[:10] == [200] * 10
    assert "Too many failed login attempts" in pages[-1]
    # Meanwhile everyone else signs in as usual.
    assert sign_in(Client(), "another@example.com", WRONG, ip="203.0.113.40")[0] == 200


def test_a_correct_password_still_works_for_someone_else_meanwhile(owner: User, member: User) -> None:
    verified(member)
    guesser = Client()
    for _ in range(5):
        sign_in(guesser, owner.email, WRONG, ip="198.51.100.50")
    honest = Client()
    status, _ = sign_in(honest, member.email, TEST_PASSWORD, ip="203.0.113.5")
    assert status == 302
    assert honest.session["_auth_user_id"] == str(member.pk)


def _post_json(client: Client, path: str, body: dict[str, object], ip: str) -> tuple[int, dict[str, object]]:
    response = client.post(path, json.dumps(body), content_type="application/json", REMOTE_ADDR=ip)
    return response.status_code, response.json()


def test_siwe_verification_attempts_are_limited_per_address() -> None:
    client = Client()
    statuses = [
        _post_json(client, "/accounts/siwe/verify", {"message": "forged", "signature": "0x00"}, "198.51.100.8")[0]
        for _ in range(21)
    ]
    assert statuses[:20] == [400] * 20
    status, body = _post_json(client, "/accounts/siwe/verify", {"message": "m", "signature": "0x"}, "198.51.100.8")
    assert status == 429
    assert "Too many sign-in attempts" in str(body["error"])
    # Another network is not affected.
    assert _post_json(client, "/accounts/siwe/verify", {"message": "m", "signature": "0x"}, "203.0.113.8")[0] == 400


def test_siwe_challenges_are_limited_per_address_so_nonces_cannot_fill_the_table() -> None:
    from accounts.models import SiweNonce

    client = Client()
    body = {"address": ALICE.address, "chain_id": 1}
    statuses = [_post_json(client, "/accounts/siwe/challenge", body, "198.51.100.9")[0] for _ in range(32)]
    assert statuses[:30] == [200] * 30
    assert statuses[30:] == [429, 429]
    assert SiweNonce.objects.count() == 30


def test_a_forged_forwarded_for_header_does_not_buy_more_attempts() -> None:
    """The limits key on the address the connection came from (REMOTE_ADDR, set by the proxy in front), never on
    X-Forwarded-For, which any client can write."""
    client = Client()
    for n in range(20):
        response = client.post(
            "/accounts/siwe/verify",
            json.dumps({"message": "forged", "signature": "0x00"}),
            content_type="application/json",
            REMOTE_ADDR="198.51.100.77",
            headers={"X-Forwarded-For": f"10.0.0.{n}"},
        )
        assert response.status_code == 400
    response = client.post(
        "/accounts/siwe/verify",
        json.dumps({"message": "forged", "signature": "0x00"}),
        content_type="application/json",
        REMOTE_ADDR="198.51.100.77",
        headers={"X-Forwarded-For": "10.0.0.250"},
    )
    assert response.status_code == 429


def test_behind_a_trusted_proxy_each_client_it_names_has_its_own_sign_in_limit(db: None, settings: Any) -> None:
    """TRUSTED_PROXIES=10.0.0.2: the proxy's X-Forwarded-For names the client, so one guesser behind it is stopped
    and the other clients of the same proxy (an office, a mobile network's NAT) still sign in."""
    settings.TRUSTED_PROXIES = ["10.0.0.2/32"]
    client = Client()

    def via_proxy(email: str, client_address: str) -> str:
        response = client.post(
            "/accounts/login/",
            {"login": email, "password": WRONG},
            REMOTE_ADDR="10.0.0.2",
            headers={"X-Forwarded-For": client_address},
        )
        return response.content.decode()

    for n in range(10):
        assert "not correct" in via_proxy(f"victim{n}@example.com", "203.0.113.5")
    assert "Too many failed login attempts" in via_proxy("another@example.com", "203.0.113.5")
    assert "not correct" in via_proxy("another@example.com", "203.0.113.6")


def test_without_trusted_proxies_a_forwarded_for_from_loopback_buys_no_more_sign_ins(db: None, settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    client = Client()
    for n in range(10):
        client.post(
            "/accounts/login/",
            {"login": f"victim{n}@example.com", "password": WRONG},
            REMOTE_ADDR="127.0.0.1",
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
    response = client.post(
        "/accounts/login/",
        {"login": "another@example.com", "password": WRONG},
        REMOTE_ADDR="127.0.0.1",
        headers={"X-Forwarded-For": "203.0.113.99"},
    )
    assert "Too many failed login attempts" in response.content.decode()
