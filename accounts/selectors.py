"""Reads about users, organizations and memberships. Every organization-scoped read starts from a membership."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth.models import AnonymousUser
from django.core.validators import slug_re
from django.db.models import QuerySet

from accounts.models import (
    MANAGING_ROLES,
    AuditEvent,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    User,
    Wallet,
)


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


def member_can_manage(*, user_id: int | None, organization_id: int) -> bool:
    """Whether the user is an owner or admin of the organization right now (None, a deleted user: no)."""
    if user_id is None:
        return False
    return Membership.objects.filter(user_id=user_id, organization_id=organization_id, role__in=MANAGING_ROLES).exists()


def organization_members(*, organization: Organization) -> QuerySet[Membership]:
    return organization.memberships.select_related("user").order_by("role", "user__email")


def organization_owner_count(*, organization: Organization) -> int:
    return organization.memberships.filter(role="owner").count()


def organization_pending_invitations(*, organization: Organization) -> QuerySet[Invitation]:
    return organization.invitations.filter(status=InvitationStatus.PENDING).select_related("invited_by")


def organization_audit_events(*, organization: Organization, limit: int = 100) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(organization=organization).select_related("actor")[:limit]


def wallet_exists(*, address: str) -> bool:
    """Whether the (checksummed) address is linked to an account: signing in with it is not a sign-up."""
    return Wallet.objects.filter(address=address).exists()


def user_is_wallet_only(*, user: User) -> bool:
    """Signs in with a wallet and has proved no email address (wallets cost nothing to make; addresses must be
    proved)."""
    return user.wallets.exists() and not EmailAddress.objects.filter(user=user, verified=True).exists()
