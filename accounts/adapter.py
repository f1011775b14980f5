"""allauth hooks: a personal organization at sign-up, audit events on sign-in, failed sign-ins counted per account
and client network, at most a few "already registered" mails, and the portal's rule for `next`."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import ratelimit
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import audit_record
from accounts.models import User
from accounts.net import client_ip, client_network
from accounts.redirects import is_safe_next_url
from accounts.services import organization_create_personal


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: User, form: Any, commit: bool = True) -> User:
        with transaction.atomic():
            user = super().save_user(request, user, form, commit=True)
            organization = organization_create_personal(user=user, ip=client_ip(request))
            audit_record(
                action="user.sign_up",
                actor=user,
                organization=organization,
                target=user.email or "",
                data={"method": "email"},
                ip=client_ip(request),
            )
        return user

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address allauth's rate limits (sign-in, sign-up, Sign-In with Ethereum) count under: the same one the
        gateway and the audit log use, so X-Forwarded-For counts only from TRUSTED_PROXIES."""
        address = client_ip(request)
        if not address:
            raise PermissionDenied("Unable to determine the client's address")
        return address

    def login(self, request: HttpRequest, user: User) -> None:
        super().login(request, user)
        audit_record(
            action="user.sign_in", actor=user, target=user.email or "", data={"method": "email"}, ip=client_ip(request)
        )

    def is_safe_url(self, url: str) -> bool:
        """allauth's `next` (sign-in, sign-up, email confirmation) follows the same rule as every other `next` here."""
        request: HttpRequest | None = self.request
        return request is not None and is_safe_next_url(request, url)

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """The key of the `login_failed` limit's per-key part. allauth's is the account alone, so five wrong
        passwords from anywhere locked the owner out everywhere; with the client's network added, a guesser uses up
        only their own attempts (the per-address parts of the limit still stop them trying many accounts)."""
        account = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account}:{client_network(request) or 'unknown'}"

    def send_account_already_exists_mail(self, email: str) -> None:
        """A sign-up with a taken address answers like any other and mails the address's owner instead; a stranger
        repeating it may not fill that inbox (`account_exists_mail` in ACCOUNT_RATE_LIMITS, keyed by the address)."""
        if ratelimit.consume(self.request, action="account_exists_mail", key=email.lower()):
            super().send_account_already_exists_mail(email)
