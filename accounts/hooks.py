"""What other apps do when a member loses the right to manage an organization, registered by those apps.

`accounts` imports no other app. An app whose records carry a member's management rights (API keys made for
management, in `apikeys`) registers a handler here from its AppConfig.ready(). The membership services call every
handler inside their own transaction, so a demotion or removal and its consequences commit together or not at all;
the team page asks the handlers what would happen, to say so before the change is confirmed.
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
