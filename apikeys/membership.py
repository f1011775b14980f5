"""API keys' part in membership changes: a key's management rights follow its creator's role.

Registered with `accounts.hooks` by ApikeysConfig.ready(), so the membership services (which import no other app)
revoke or downgrade the keys a demoted or removed member made for management in their own transaction, and the
team page can say how many before the change is confirmed.
"""

from __future__ import annotations

from accounts.models import Organization, User
from apikeys.selectors import apikeys_for_management_per_creator
from apikeys.services import apikeys_end_management_rights


def management_keys_phrase(count: int) -> str:
    return f"{count} management key{'' if count == 1 else 's'} they created"


class ManagementKeys:
    def consequences(self, *, organization: Organization) -> dict[int, str]:
        counts = apikeys_for_management_per_creator(organization=organization)
        return {user_id: management_keys_phrase(count) for user_id, count in counts.items()}

    def end(self, *, organization: Organization, user: User, actor: User | None, reason: str, ip: str | None) -> None:
        apikeys_end_management_rights(organization=organization, user=user, actor=actor, reason=reason, ip=ip)


management_keys = ManagementKeys()
