"""Reactions to allauth's events."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.hooks import email_verified
from accounts.net import client_ip


@receiver(email_confirmed, dispatch_uid="accounts.leave_wallet_only_plan")
def leave_wallet_only_plan(
    sender: type[EmailAddress], request: HttpRequest | None, email_address: EmailAddress, **kwargs: Any
) -> None:
    """A proved email address ends the wallet-only start (the link, or an operator's "mark verified" in the admin)."""
    email_verified(user=email_address.user, ip=client_ip(request) if request is not None else None)
