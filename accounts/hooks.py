"""What other apps do when something happens to an account or an organization, registered by those apps.

`accounts` imports no other app. An app that reacts registers a handler here from its AppConfig.ready(); the
accounts services call every handler inside their own transaction, so a change and its consequences commit together
or not at all:
- a member loses the right to manage an organization (demoted, removed, left): `apikeys` takes back the keys they
  made for management; the team page asks the handlers what would happen, to say so before it is confirmed;
- an organization is created, and a user proves an email address: `billing` picks the plan the organization starts
  on (a wallet-only owner's may be a smaller one) and moves a verified owner's organizations off it.
"""

from __future__ import annotations

import threading
from typing import Protocol

from accounts.models import Organization, User


class ManagerRightsHandler(Protocol):
    def consequences(self, *, organization: Organization) -> dict[int, str]:
        """Per member's user id, what ending their management rights would take away, as a phrase that completes
        "Removing X revokes …", e.g. "2 management keys they created". Members with nothing to lose are absent."""
        ...

    def end(self, *, organization: Organization, user: User, actor: User | None, reason: str, ip: str | None) -> None:
        """`user` can no longer manage `organization` (demoted, removed, left): take back what their rights gave.
        Runs inside the membership change's transaction; `reason` is its audit action."""
        ...


_handlers: list[ManagerRightsHandler] = []
_lock = threading.Lock()


def register_manager_rights_handler(handler: ManagerRightsHandler) -> None:
    with _lock:
        if handler not in _handlers:
            _handlers.append(handler)


def manager_rights_consequences(*, organization: Organization) -> dict[int, list[str]]:
    """Per user id, every registered app's phrase for what that member would lose."""
    found: dict[int, list[str]] = {}
    for handler in list(_handlers):
        for user_id, phrase in handler.consequences(organization=organization).items():
            found.setdefault(user_id, []).append(phrase)
    return found


def manager_rights_end(
    *, organization: Organization, user: User, actor: User | None, reason: str, ip: str | None
) -> None:
    for handler in list(_handlers):
        handler.end(organization=organization, user=user, actor=actor, reason=reason, ip=ip)


class AccountEventsHandler(Protocol):
    def organization_created(self, *, organization: Organization, owner: User, ip: str | None) -> None:
        """A new organization, with its owner's membership. May raise accounts.errors.SignUpUnavailable to refuse
        it (the whole creation is rolled back)."""
        ...

    def email_verified(self, *, user: User, ip: str | None) -> None:
        """`user` proved an email address (the confirmation link, an invitation link, an operator's "verified")."""
        ...


_account_handlers: list[AccountEventsHandler] = []


def register_account_events_handler(handler: AccountEventsHandler) -> None:
    with _lock:
        if handler not in _account_handlers:
            _account_handlers.append(handler)


def organization_created(*, organization: Organization, owner: User, ip: str | None) -> None:
    for handler in list(_account_handlers):
        handler.organization_created(organization=organization, owner=owner, ip=ip)


def email_verified(*, user: User, ip: str | None) -> None:
    for handler in list(_account_handlers):
        handler.email_verified(user=user, ip=ip)
