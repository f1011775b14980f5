from __future__ import annotations

from django.http import HttpRequest

from accounts.current import current_membership
from accounts.selectors import memberships_of


def organizations(request: HttpRequest) -> dict[str, object]:
    """The organization switcher's data, for signed-in pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_membership": current_membership(request),
        "user_memberships": memberships_of(user=user),
    }
