"""The organization a signed-in user is working in, kept in the session."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import Membership
from accounts.selectors import membership_current

SESSION_KEY = "current_organization"
_CACHE_ATTR = "_current_membership"


def current_membership(request: HttpRequest) -> Membership | None:
    if not hasattr(request, _CACHE_ATTR):
        membership = membership_current(user=request.user, slug=request.session.get(SESSION_KEY))
        setattr(request, _CACHE_ATTR, membership)
    cached: Membership | None = getattr(request, _CACHE_ATTR)
    return cached


def set_current_organization(request: HttpRequest, membership: Membership) -> None:
    request.session[SESSION_KEY] = membership.organization.slug
    setattr(request, _CACHE_ATTR, membership)
