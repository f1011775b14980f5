"""Organization pages: list and create, switch, members and roles, invitations, audit log."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import selectors, services
from accounts.current import set_current_organization
from accounts.errors import AccountsError, SignUpUnavailable
from accounts.forms import InvitationForm, OrganizationForm, RoleForm
from accounts.hooks import manager_rights_consequences
from accounts.http import AuthedRequest
from accounts.models import MANAGING_ROLES, InvitationStatus, Membership, Role
from accounts.net import client_ip
from accounts.redirects import safe_next_url
from accounts.views.access import membership_or_404, require_manager


@login_required
@require_http_methods(["GET", "POST"])
def organization_list(request: AuthedRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                name=form.cleaned_data["name"],
                owner=request.user,
                ip=client_ip(request),
            )
        except AccountsError as error:
            form.add_error(None, str(error))
            memberships = selectors.memberships_of(user=request.user)
            context = {"memberships": memberships, "form": form}
            status = 503 if isinstance(error, SignUpUnavailable) else 400
            return render(request, "accounts/organization_list.html", context, status=status)
        membership = selectors.membership_for(user=request.user, slug=organization.slug)
        assert membership is not None
        set_current_organization(request, membership)
        messages.success(request, f"Created {organization.name}.")
        return redirect("organization_detail", slug=organization.slug)
    memberships = selectors.memberships_of(user=request.user)
    return render(request, "accounts/organization_list.html", {"memberships": memberships, "form": form})


@login_required
@require_POST
def organization_switch(request: AuthedRequest) -> HttpResponse:
    membership = membership_or_404(request, request.POST.get("organization", ""))
    set_current_organization(request, membership)
    return redirect(safe_next_url(request, request.POST.get("next")))


def _losses(membership: Membership) -> dict[int, str]:
    """Per member's user id, what ending their management rights would revoke (from the apps that registered)."""
    found = manager_rights_consequences(organization=membership.organization)
    return {user_id: " and ".join(phrases) for user_id, phrases in found.items()}


def _detail_context(membership: Membership, pending: dict[str, object] | None = None) -> dict[str, object]:
    """`pending`: a demotion or removal waiting for the manager to confirm what it revokes."""
    organization = membership.organization
    members = list(selectors.organization_members(organization=organization))
    losses = _losses(membership) if membership.can_manage else {}
    context: dict[str, object] = {
        "membership": membership,
        "organization": organization,
        "members": members,
        "member_rows": [(m, losses.get(m.user_id, "")) for m in members],
        "invitation_form": InvitationForm(),
        "role_choices": Role.choices,
        "pending": pending,
    }
    if membership.can_manage:
        context["invitations"] = selectors.organization_pending_invitations(organization=organization)
        context["audit_events"] = selectors.organization_audit_events(organization=organization, limit=50)
    return context


@login_required
@require_GET
def organization_detail(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    return render(request, "accounts/organization_detail.html", _detail_context(membership))


def _after_change(request: AuthedRequest, membership: Membership, partial: str) -> HttpResponse:
    if request.htmx:
        template = f"accounts/organization_detail.html#{partial}"
        return render(request, template, _detail_context(membership))
    return redirect("organization_detail", slug=membership.organization.slug)


def _ask_first(request: AuthedRequest, actor: Membership, pending: dict[str, object]) -> HttpResponse:
    """The member list with the question "Demoting/Removing X revokes …; go ahead?" and nothing changed yet; the
    answer posts the same form again with `confirm=yes`. Asked by the server, so it works without JavaScript."""
    template = "accounts/organization_detail.html"
    if request.htmx:
        template += "#members"
    return render(request, template, _detail_context(actor, pending))


def _confirmed(request: AuthedRequest) -> bool:
    return request.POST.get("confirm") == "yes"


@login_required
@require_POST
def member_role(request: AuthedRequest, slug: str, member_id: int) -> HttpResponse:
    actor = membership_or_404(request, slug)
    require_manager(actor)
    target = get_object_or_404(Membership, pk=member_id, organization=actor.organization)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or member.")
        return _after_change(request, actor, "members")
    role = form.cleaned_data["role"]
    loses = _losses(actor).get(target.user_id, "") if role not in MANAGING_ROLES else ""
    if loses and not _confirmed(request):
        question = f"Demoting {target.user} to {role} revokes {loses}."
        return _ask_first(request, actor, {"member": target, "question": question, "role": role, "url": "member_role"})
    try:
        services.membership_change_role(actor_membership=actor, membership=target, role=role, ip=client_ip(request))
        messages.success(request, f"{target.user} is now {role}." + (f" Revoked {loses}." if loses else ""))
    except AccountsError as error:
        messages.error(request, str(error))
    return _after_change(request, actor, "members")


@login_required
@require_POST
def member_remove(request: AuthedRequest, slug: str, member_id: int) -> HttpResponse:
    actor = membership_or_404(request, slug)
    require_manager(actor)
    target = get_object_or_404(Membership, pk=member_id, organization=actor.organization)
    loses = _losses(actor).get(target.user_id, "")
    if loses and not _confirmed(request):
        question = f"Removing {target.user} from {actor.organization.name} revokes {loses}."
        return _ask_first(request, actor, {"member": target, "question": question, "url": "member_remove"})
    try:
        services.membership_remove(actor_membership=actor, membership=target, ip=client_ip(request))
        messages.success(request, f"Removed {target.user}." + (f" Revoked {loses}." if loses else ""))
    except AccountsError as error:
        messages.error(request, str(error))
    return _after_change(request, actor, "members")


@login_required
@require_POST
def organization_leave(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    try:
        services.membership_leave(membership=membership, ip=client_ip(request))
    except AccountsError as error:
        messages.error(request, str(error))
        return redirect("organization_detail", slug=slug)
    messages.success(request, f"You left {membership.organization.name}.")
    return redirect("organization_list")


@login_required
@require_POST
def invitation_create(request: AuthedRequest, slug: str) -> HttpResponse:
    actor = membership_or_404(request, slug)
    require_manager(actor)
    form = InvitationForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a valid email address and role.")
    else:
        try:
            services.invitation_create(
                actor_membership=actor,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                ip=client_ip(request),
            )
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
        except AccountsError as error:
            messages.error(request, str(error))
    return _after_change(request, actor, "invitations")


@login_required
@require_POST
def invitation_revoke(request: AuthedRequest, slug: str, invitation_id: int) -> HttpResponse:
    actor = membership_or_404(request, slug)
    require_manager(actor)
    invitation = get_object_or_404(actor.organization.invitations, pk=invitation_id, status=InvitationStatus.PENDING)
    try:
        services.invitation_revoke(actor_membership=actor, invitation=invitation, ip=client_ip(request))
        messages.success(request, f"Withdrew the invitation to {invitation.email}.")
    except AccountsError as error:
        messages.error(request, str(error))
    return _after_change(request, actor, "invitations")
