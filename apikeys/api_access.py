"""Who is calling the management API, and for which organization.

A `manage`-scoped key acts for its own organization, while its creator is an owner or admin there (checked by
apikeys.authentication on every request). A browser session acts for `?organization=<slug>` when given,
else for the organization currently selected in the portal. Another organization is a 404, never its data.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.validators import slug_re
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request

from accounts.models import Organization, User
from accounts.selectors import membership_current, membership_for
from apikeys.authentication import ApiKeyPrincipal


@dataclass(frozen=True)
class ApiCaller:
    organization: Organization
    actor: User | None
    can_manage: bool

    def require_manage(self) -> None:
        if not self.can_manage:
            raise PermissionDenied("Only owners and admins of this organization can do this.")


def _requested_slug(request: Request) -> str | None:
    slug = request.query_params.get("organization")
    if slug and not slug_re.match(slug):
        raise ValidationError({"organization": ["Not an organization slug: letters, digits, hyphens and underscores."]})
    return slug


def api_caller(request: Request) -> ApiCaller:
    principal = request.user
    slug = _requested_slug(request)
    if isinstance(principal, ApiKeyPrincipal):
        if slug and slug != principal.organization.slug:
            raise NotFound("No such organization.")
        return ApiCaller(organization=principal.organization, actor=principal.actor, can_manage=True)
    user: User = principal
    if slug:
        membership = membership_for(user=user, slug=slug)
    else:
        membership = membership_current(user=user, slug=request.session.get("current_organization"))
    if membership is None:
        raise NotFound("No such organization.")
    return ApiCaller(organization=membership.organization, actor=user, can_manage=membership.can_manage)
