"""allauth hooks: a personal organization at sign-up, audit events on sign-in, the portal's rule for `next`."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import audit_record
from accounts.models import User
from accounts.net import client_ip
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

    def login(self, request: HttpRequest, user: User) -> None:
        super().login(request, user)
        audit_record(
            action="user.sign_in", actor=user, target=user.email or "", data={"method": "email"}, ip=client_ip(request)
        )

    def is_safe_url(self, url: str) -> bool:
        """allauth's `next` (sign-in, sign-up, email confirmation) follows the same rule as every other `next` here."""
        request: HttpRequest | None = self.request
        return request is not None and is_safe_next_url(request, url)
