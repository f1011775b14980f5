"""Writes about organizations, memberships and invitations. Each writes an audit event.

Role rules: owners and admins manage members and keys; only owners grant or take the owner role; an organization
always keeps at least one owner (the last owner can neither leave nor be demoted or removed). A member who stops
being able to manage (demoted to member, removed, left) loses what those rights gave them elsewhere, such as API
keys made for management, in the same transaction (`accounts.hooks`).
"""

from __future__ import annotations

from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from accounts.audit import audit_record
from accounts.errors import AccountsError, InvitationError, LastOwnerError
from accounts.hooks import email_verified, manager_rights_end, organization_created
from accounts.models import Invitation, InvitationStatus, Membership, Organization, Role, User

INVITATION_SALT = "accounts.invitation"


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def organization_create(*, name: str, owner: User, personal: bool = False, ip: str | None = None) -> Organization:
    name = name.strip()
    if not name:
        raise AccountsError("An organization needs a name.")
    with transaction.atomic():
        organization = Organization.objects.create(name=name[:100], slug=_unique_slug(name), personal=personal)
        Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
        audit_record(action="organization.create", actor=owner, organization=organization, target=name, ip=ip)
        # Billing picks the starting plan (a wallet-only owner's may be a smaller one), or refuses.
        organization_created(organization=organization, owner=owner, ip=ip)
    return organization


def organization_create_personal(*, user: User, ip: str | None = None) -> Organization:
    """The organization every user gets at sign-up, named after them."""
    label = user.name or (user.email or "").split("@")[0] or "My"
    return organization_create(name=f"{label}'s organization", owner=user, personal=True, ip=ip)


def _lock_memberships(organization: Organization) -> list[Membership]:
    # Serializes role changes in one organization so two concurrent demotions cannot remove the last owner.
    return list(Membership.objects.select_for_update().filter(organization=organization))


def _check_actor_may_manage(actor_membership: Membership, target: Membership, new_role: str | None = None) -> None:
    if not actor_membership.can_manage:
        raise AccountsError("Only owners and admins manage members.")
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and not actor_membership.is_owner:
        raise AccountsError("Only owners grant or take the owner role.")


def membership_change_role(
    *, actor_membership: Membership, membership: Membership, role: str, ip: str | None = None
) -> Membership:
    if role not in Role.values:
        raise AccountsError("Unknown role.")
    with transaction.atomic():
        locked = {m.pk: m for m in _lock_memberships(membership.organization)}
        target = locked[membership.pk]
        actor = locked.get(actor_membership.pk)
        if actor is None:
            raise AccountsError("You are no longer a member of this organization.")
        _check_actor_may_manage(actor, target, role)
        if target.role == Role.OWNER and role != Role.OWNER:
            owners = sum(1 for m in locked.values() if m.role == Role.OWNER)
            if owners <= 1:
                raise LastOwnerError("The last owner cannot be demoted; make someone else an owner first.")
        previous = target.role
        target.role = role
        target.save(update_fields=["role"])
        audit_record(
            action="membership.role_change",
            actor=actor.user,
            organization=target.organization,
            target=str(target.user),
            data={"from": previous, "to": role},
            ip=ip,
        )
        if not target.can_manage:
            manager_rights_end(
                organization=target.organization,
                user=target.user,
                actor=actor.user,
                reason="membership.role_change",
                ip=ip,
            )
    return target


def membership_remove(*, actor_membership: Membership, membership: Membership, ip: str | None = None) -> None:
    with transaction.atomic():
        locked = {m.pk: m for m in _lock_memberships(membership.organization)}
        target = locked[membership.pk]
        actor = locked.get(actor_membership.pk)
        if actor is None:
            raise AccountsError("You are no longer a member of this organization.")
        if actor.pk != target.pk:
            _check_actor_may_manage(actor, target)
        if target.role == Role.OWNER and sum(1 for m in locked.values() if m.role == Role.OWNER) <= 1:
            raise LastOwnerError("The last owner cannot leave or be removed; make someone else an owner first.")
        action = "membership.leave" if actor.pk == target.pk else "membership.remove"
        audit_record(action=action, actor=actor.user, organization=target.organization, target=str(target.user), ip=ip)
        # Whatever their role: keys made for management while they were an admin end with their membership too.
        manager_rights_end(organization=target.organization, user=target.user, actor=actor.user, reason=action, ip=ip)
        target.delete()


def membership_leave(*, membership: Membership, ip: str | None = None) -> None:
    membership_remove(actor_membership=membership, membership=membership, ip=ip)


def invitation_token(invitation: Invitation) -> str:
    return signing.dumps({"invitation": invitation.pk}, salt=INVITATION_SALT)


def invitation_create(
    *, actor_membership: Membership, email: str, role: str = Role.MEMBER, ip: str | None = None
) -> Invitation:
    organization = actor_membership.organization
    email = email.strip().lower()
    if not actor_membership.can_manage:
        raise AccountsError("Only owners and admins invite members.")
    if role not in Role.values:
        raise AccountsError("Unknown role.")
    if role == Role.OWNER and not actor_membership.is_owner:
        raise AccountsError("Only owners invite owners.")
    if organization.memberships.filter(user__email=email).exists():
        raise InvitationError(f"{email} is already a member.")
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                invited_by=actor_membership.user,
                expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
            )
            audit_record(
                action="invitation.create",
                actor=actor_membership.user,
                organization=organization,
                target=email,
                data={"role": role},
                ip=ip,
            )
    except IntegrityError:
        raise InvitationError(f"{email} already has a pending invitation.") from None
    link = settings.PORTAL_BASE_URL + reverse("invitation_accept", args=[invitation_token(invitation)])
    send_mail(
        subject=f"[Cortensor Portal] Join {organization.name}",
        message=(
            f"{actor_membership.user} invited you to the organization {organization.name} on Cortensor Portal "
            f"as {invitation.get_role_display().lower()}.\n\nAccept: {link}\n\n"
            f"The link works until {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=None,
        recipient_list=[email],
    )
    return invitation


def invitation_revoke(*, actor_membership: Membership, invitation: Invitation, ip: str | None = None) -> None:
    if not actor_membership.can_manage:
        raise AccountsError("Only owners and admins revoke invitations.")
    if invitation.status != InvitationStatus.PENDING:
        raise InvitationError("This invitation is no longer pending.")
    invitation.status = InvitationStatus.REVOKED
    invitation.save(update_fields=["status"])
    audit_record(
        action="invitation.revoke",
        actor=actor_membership.user,
        organization=invitation.organization,
        target=invitation.email,
        ip=ip,
    )


def invitation_from_token(*, token: str) -> Invitation:
    """The pending invitation a link names, or InvitationError saying why it cannot be used."""
    max_age = timedelta(days=settings.INVITATION_TTL_DAYS)
    try:
        payload = signing.loads(token, salt=INVITATION_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise InvitationError("This invitation link has expired; ask for a new one.") from None
    except signing.BadSignature:
        raise InvitationError("This invitation link is not valid.") from None
    invitation = Invitation.objects.select_related("organization").filter(pk=payload.get("invitation")).first()
    if invitation is None or invitation.status == InvitationStatus.REVOKED:
        raise InvitationError("This invitation has been withdrawn.")
    if invitation.status == InvitationStatus.ACCEPTED:
        raise InvitationError("This invitation has already been used.")
    if invitation.expires_at <= timezone.now():
        raise InvitationError("This invitation link has expired; ask for a new one.")
    return invitation


def invitation_accept(*, token: str, user: User, ip: str | None = None) -> Membership:
    with transaction.atomic():
        invitation = invitation_from_token(token=token)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if invitation.status != InvitationStatus.PENDING:
            raise InvitationError("This invitation has already been used.")
        if (user.email or "").lower() != invitation.email:
            raise InvitationError(
                f"This invitation was sent to {invitation.email}; sign in with that address to accept it."
            )
        membership, created = Membership.objects.get_or_create(
            organization=invitation.organization, user=user, defaults={"role": invitation.role}
        )
        invitation.status = InvitationStatus.ACCEPTED
        invitation.accepted_by = user
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["status", "accepted_by", "accepted_at"])
        # Following the emailed link proves the address, as allauth's own confirmation link would.
        if EmailAddress.objects.filter(user=user, email__iexact=invitation.email, verified=False).update(verified=True):
            email_verified(user=user, ip=ip)
        audit_record(
            action="invitation.accept",
            actor=user,
            organization=invitation.organization,
            target=invitation.email,
            data={"role": membership.role, "new_member": created},
            ip=ip,
        )
    return membership
