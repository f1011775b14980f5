"""Sign-In with Ethereum with real EIP-4361 messages signed by eth-account keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from eth_account import Account
from eth_account.messages import encode_defunct

from accounts.models import AuditEvent, Membership, SiweNonce, User, Wallet
from accounts.siwe import STATEMENT, siwe

ALICE = Account.from_key("0x" + "11" * 32)
MALLORY = Account.from_key("0x" + "22" * 32)

pytestmark = pytest.mark.django_db


def challenge(client: Client, address: str, chain_id: int = 1) -> tuple[int, dict[str, str]]:
    response = client.post(
        "/accounts/siwe/challenge",
        json.dumps({"address": address, "chain_id": chain_id}),
        content_type="application/json",
    )
    return response.status_code, response.json()


def sign(message: str, account: object = ALICE) -> str:
    return "0x" + account.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")  # type: ignore[attr-defined]


def verify(client: Client, message: str, signature: str) -> tuple[int, dict[str, str]]:
    response = client.post(
        "/accounts/siwe/verify",
        json.dumps({"message": message, "signature": signature}),
        content_type="application/json",
    )
    return response.status_code, response.json()


def rewrite(message: str, **changes: object) -> str:
    """The same challenge with some fields changed, as an attacker or a confused client would send it."""
    parsed = siwe.SiweMessage.from_message(message)
    return str(parsed.model_copy(update=changes).prepare_message())


def assert_nothing_created(client: Client) -> None:
    assert User.objects.count() == 0
    assert Wallet.objects.count() == 0
    assert "_auth_user_id" not in client.session


def test_first_sign_in_creates_a_user_a_wallet_and_a_personal_organization(client: Client) -> None:
    status, body = challenge(client, ALICE.address.lower())
    assert status == 200
    message = body["message"]
    assert message.startswith("testserver wants you to sign in with your Ethereum account:\n" + ALICE.address)
    assert STATEMENT in message

    status, result = verify(client, message, sign(message))

    assert status == 200, result
    user = User.objects.get()
    assert user.email is None
    assert Wallet.objects.get().address == ALICE.address  # stored EIP-55 checksummed
    assert Membership.objects.get(user=user).role == "owner"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditEvent.objects.filter(action="user.sign_up", actor=user).exists()


def test_signing_in_again_finds_the_same_user(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    verify(client, body["message"], sign(body["message"]))
    other_browser = Client()
    _, body = challenge(other_browser, ALICE.address)
    status, _ = verify(other_browser, body["message"], sign(body["message"]))
    assert status == 200
    assert User.objects.count() == 1
    assert other_browser.session["_auth_user_id"] == str(User.objects.get().pk)


def test_a_replayed_message_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    signature = sign(body["message"])
    assert verify(client, body["message"], signature)[0] == 200
    attacker = Client()
    status, result = verify(attacker, body["message"], signature)
    assert status == 400
    assert "already used" in result["error"]
    assert "_auth_user_id" not in attacker.session


def test_a_message_for_another_domain_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    message = rewrite(body["message"], domain="evil.example")
    status, result = verify(client, message, sign(message))
    assert status == 400
    assert "another site" in result["error"]
    assert_nothing_created(client)


def test_a_message_for_another_uri_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    message = rewrite(body["message"], uri="https://evil.example/")
    status, _ = verify(client, message, sign(message))
    assert status == 400
    assert_nothing_created(client)


def test_a_chain_not_on_the_allowed_list_is_refused(client: Client) -> None:
    status, body = challenge(client, ALICE.address, chain_id=999_999)
    assert status == 400
    assert "Chain 999999 is not accepted" in body["error"]
    _, body = challenge(client, ALICE.address)
    message = rewrite(body["message"], chain_id=999_999)
    status, _ = verify(client, message, sign(message))
    assert status == 400
    assert_nothing_created(client)


def test_an_expired_message_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    past = datetime.now(UTC) - timedelta(minutes=11)
    message = rewrite(
        body["message"],
        issued_at=siwe.ISO8601Datetime.from_datetime(past - timedelta(minutes=10)),
        expiration_time=siwe.ISO8601Datetime.from_datetime(past),
    )
    status, result = verify(client, message, sign(message))
    assert status == 400
    assert "expired" in result["error"]
    assert_nothing_created(client)


def test_a_nonce_past_its_ten_minutes_is_refused_even_with_a_valid_message(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    SiweNonce.objects.update(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    status, _ = verify(client, body["message"], sign(body["message"]))
    assert status == 400
    assert_nothing_created(client)


def test_a_signature_from_another_key_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    status, result = verify(client, body["message"], sign(body["message"], MALLORY))
    assert status == 400
    assert "signature does not match" in result["error"]
    assert_nothing_created(client)


def test_a_message_with_a_made_up_nonce_is_refused(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    message = rewrite(body["message"], nonce="abcdefgh12345678")
    status, _ = verify(client, message, sign(message))
    assert status == 400
    assert_nothing_created(client)


@pytest.mark.parametrize(
    "message", ["", "hello", "testserver wants you to sign in with your Ethereum account:\n0xnotanaddress\n"]
)
def test_a_malformed_message_is_refused(client: Client, message: str) -> None:
    status, result = verify(client, message, "0x" + "00" * 65)
    assert status == 400
    assert result["error"]
    assert_nothing_created(client)


def test_challenge_refuses_a_bad_address(client: Client) -> None:
    status, body = challenge(client, "0x1234")
    assert status == 400
    assert "not an Ethereum address" in body["error"]
    assert SiweNonce.objects.count() == 0


def test_a_signed_in_user_links_and_unlinks_a_wallet(client: Client, owner: User) -> None:
    client.force_login(owner)
    _, body = challenge(client, ALICE.address)
    status, result = verify(client, body["message"], sign(body["message"]))
    assert status == 200 and result["linked"] == ALICE.address
    wallet = Wallet.objects.get(user=owner)
    assert User.objects.count() == 1  # no new user

    response = client.post(f"/accounts/wallets/{wallet.pk}/unlink")
    assert response.status_code == 302
    assert not Wallet.objects.exists()
    assert AuditEvent.objects.filter(action="wallet.unlink").exists()


def test_an_address_belongs_to_one_user(client: Client, owner: User, member: User) -> None:
    client.force_login(owner)
    _, body = challenge(client, ALICE.address)
    verify(client, body["message"], sign(body["message"]))
    other = Client()
    other.force_login(member)
    _, body = challenge(other, ALICE.address)
    status, result = verify(other, body["message"], sign(body["message"]))
    assert status == 400
    assert "another account" in result["error"]
    assert Wallet.objects.get().user == owner


def test_the_only_wallet_of_a_wallet_only_user_cannot_be_unlinked(client: Client) -> None:
    _, body = challenge(client, ALICE.address)
    verify(client, body["message"], sign(body["message"]))
    wallet = Wallet.objects.get()
    client.post(f"/accounts/wallets/{wallet.pk}/unlink")
    assert Wallet.objects.filter(pk=wallet.pk).exists()


def test_nobody_can_unlink_someone_elses_wallet(client: Client, owner: User, outsider: User) -> None:
    wallet = Wallet.objects.create(user=owner, address=ALICE.address, chain_id=1)
    client.force_login(outsider)
    client.post(f"/accounts/wallets/{wallet.pk}/unlink")
    assert Wallet.objects.filter(pk=wallet.pk).exists()
