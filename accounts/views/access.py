"""Access helpers shared by organization-scoped views: 404 for other organizations, 403 for a missing role."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.http import AuthedRequest
from accounts.models import Membership
from accounts.selectors import membership_for


def membership_or_404(request: AuthedRequest, slug: str) -> Membership:
    membership = membership_for(user=request.user, slug=slug)
    if membership is None:
        raise Http404("No such organization")
    return membership


def require_manager(membership: Membership) -> None:
    if not membership.can_manage:
        raise PermissionDenied("Only owners and admins can do this.")
