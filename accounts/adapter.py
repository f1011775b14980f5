"""allauth hooks: a personal organization at sign-up, audit events on sign-in."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest

from accounts.audit import audit_record
from accounts.models import User
from accounts.net import client_ip
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
