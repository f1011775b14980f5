"""Sign-In with Ethereum (EIP-4361): issue a challenge, verify the signed message, find or create the user.

The server decides every field of the message (domain, URI, chain, nonce, times) and keeps the nonce; the browser
only reports the address and signs. Verification re-checks each field against what this site expects, consumes the
nonce atomically (a replay finds it used), and only then touches users or wallets, so a refused message leaves
nothing behind.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import timedelta

with warnings.catch_warnings():
    # abnf 2.8 warns about siwe's grammar redefining core rules; harmless, and noisy on every start-up.
    warnings.simplefilter("ignore")
    import siwe
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from eth_utils import is_address, to_checksum_address

from accounts.audit import audit_record
from accounts.errors import SiweError
from accounts.models import SiweNonce, User, Wallet
from accounts.services import organization_create_personal

STATEMENT = "Sign in to Cortensor Portal."


def checksum_address(address: str) -> str:
    """EIP-55 form of an address, or SiweError if it is not one."""
    if not isinstance(address, str) or not is_address(address):
        raise SiweError("That is not an Ethereum address.")
    return str(to_checksum_address(address))


def siwe_challenge_issue(*, address: str, chain_id: int, domain: str, uri: str) -> str:
    """Store a fresh nonce for `address` and return the exact EIP-4361 message the wallet should sign."""
    address = checksum_address(address)
    if chain_id not in settings.SIWE_ALLOWED_CHAIN_IDS:
        raise SiweError(f"Chain {chain_id} is not accepted here; switch your wallet to a supported network.")
    now = timezone.now().replace(microsecond=0)
    expires = now + timedelta(seconds=settings.SIWE_NONCE_TTL_SECONDS)
    nonce = siwe.generate_nonce()
    SiweNonce.objects.create(nonce=nonce, address=address, issued_at=now, expires_at=expires)
    message = siwe.SiweMessage(
        domain=domain,
        address=address,
        statement=STATEMENT,
        uri=uri,
        version="1",
        chain_id=chain_id,
        nonce=nonce,
        issued_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        expiration_time=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return str(message.prepare_message())


@dataclass(frozen=True)
class VerifiedSignIn:
    address: str
    chain_id: int


def siwe_verify(*, message: object, signature: object, domain: str, uri: str) -> VerifiedSignIn:
    """Check a signed message against this site and consume its nonce. Raises SiweError with the reason."""
    if not isinstance(message, str) or not isinstance(signature, str) or not message or not signature:
        raise SiweError("Send the signed message and its signature.")
    if len(message) > 4000 or len(signature) > 200:
        raise SiweError("The message or signature is too long.")
    try:
        parsed = siwe.SiweMessage.from_message(message)
    except Exception:  # the parser raises several unrelated types for bad input
        raise SiweError("The message is not a valid Sign-In with Ethereum message.") from None
    if parsed.domain != domain:
        raise SiweError("The message was made for another site; sign in from this page.")
    if str(parsed.uri).rstrip("/") != uri.rstrip("/"):
        raise SiweError("The message names another address than this site's; sign in from this page.")
    if parsed.chain_id not in settings.SIWE_ALLOWED_CHAIN_IDS:
        raise SiweError(f"Chain {parsed.chain_id} is not accepted here.")
    if parsed.statement != STATEMENT or parsed.version != "1" or parsed.expiration_time is None:
        raise SiweError("The message was not issued by this site; start the sign-in again.")
    try:
        parsed.verify(signature, domain=domain)
    except siwe.ExpiredMessage:
        raise SiweError("The sign-in request expired; start again.") from None
    except siwe.NotYetValidMessage:
        raise SiweError("The message is not valid yet.") from None
    except siwe.VerificationError:
        raise SiweError("The signature does not match the message and address.") from None
    except Exception:
        raise SiweError("The signature could not be checked.") from None
    now = timezone.now()
    # Atomic consumption: of two requests racing with the same nonce, exactly one updates the row.
    consumed = SiweNonce.objects.filter(
        nonce=parsed.nonce, address=parsed.address, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if consumed != 1:
        raise SiweError("This sign-in request was already used or has expired; start again.")
    return VerifiedSignIn(address=parsed.address, chain_id=parsed.chain_id)


def siwe_sign_in(*, verified: VerifiedSignIn, ip: str | None = None) -> User:
    """The user who owns the address; a new user with a personal organization on first sign-in."""
    with transaction.atomic():
        wallet = Wallet.objects.select_related("user").filter(address=verified.address).first()
        if wallet is not None:
            if not wallet.user.is_active:
                raise SiweError("This account is disabled.")
            wallet.last_sign_in_at = timezone.now()
            wallet.save(update_fields=["last_sign_in_at"])
            user = wallet.user
            audit_record(action="user.sign_in", actor=user, target=verified.address, data={"method": "siwe"}, ip=ip)
            return user
        user = User.objects.create_user(name=f"{verified.address[:6]}…{verified.address[-4:]}")
        Wallet.objects.create(
            user=user, address=verified.address, chain_id=verified.chain_id, last_sign_in_at=timezone.now()
        )
        organization = organization_create_personal(user=user, ip=ip)
        audit_record(
            action="user.sign_up",
            actor=user,
            organization=organization,
            target=verified.address,
            data={"method": "siwe", "chain_id": verified.chain_id},
            ip=ip,
        )
    return user


def wallet_link(*, user: User, verified: VerifiedSignIn, ip: str | None = None) -> Wallet:
    with transaction.atomic():
        existing = Wallet.objects.select_for_update().filter(address=verified.address).first()
        if existing is not None:
            if existing.user_id == user.pk:
                return existing
            raise SiweError("This wallet is linked to another account.")
        wallet = Wallet.objects.create(user=user, address=verified.address, chain_id=verified.chain_id)
        audit_record(action="wallet.link", actor=user, target=verified.address, ip=ip)
    return wallet


def wallet_unlink(*, user: User, wallet_id: int, ip: str | None = None) -> None:
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().filter(pk=wallet_id, user=user).first()
        if wallet is None:
            raise SiweError("No such wallet on your account.")
        other_wallets = Wallet.objects.filter(user=user).exclude(pk=wallet.pk).exists()
        if not other_wallets and not (user.email and user.has_usable_password()):
            raise SiweError("This wallet is your only way to sign in; add an email and password first.")
        audit_record(action="wallet.unlink", actor=user, target=wallet.address, ip=ip)
        wallet.delete()
