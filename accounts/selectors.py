"""Reads about users, organizations and memberships. Every organization-scoped read starts from a membership."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.core.validators import slug_re
from django.db.models import QuerySet

from accounts.models import AuditEvent, Invitation, InvitationStatus, Membership, Organization, User


def memberships_of(*, user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("-organization__personal", "organization__name")
    )


def membership_for(*, user: User | AnonymousUser, slug: str) -> Membership | None:
    """The user's membership of the organization `slug`, or None (callers answer 404: not yours or not there)."""
    if not user.is_authenticated or not slug_re.match(slug):  # e.g. a NUL, which PostgreSQL refuses in a query
        return None
    return Membership.objects.select_related("organization").filter(user=user, organization__slug=slug).first()


def membership_current(*, user: User | AnonymousUser, slug: str | None) -> Membership | None:
    """The organization the user is working in: the one kept in the session if still a member, else the first."""
    if not user.is_authenticated:
        return None
    if slug:
        membership = membership_for(user=user, slug=slug)
        if membership is not None:
            return membership
    return memberships_of(user=user).first()


def organization_members(*, organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("role", "user__email")


def organization_owner_count(*, organization: Organization) -> int:
    return organization.memberships.filter(role="owner").count()


def organization_pending_invitations(*, organization: Organization) -> QuerySet[Invitation]:
    return organization.invitations.filter(status=InvitationStatus.PENDING).select_related("invited_by")


def organization_audit_events(*, organization: Organization, limit: int = 100) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization=organization).select_related("actor")[:limit]
