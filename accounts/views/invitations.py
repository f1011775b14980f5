"""Accepting an invitation from its emailed link."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts import services
from accounts.current import set_current_organization
from accounts.errors import InvitationError
from accounts.net import client_ip


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_from_token(token=token)
    except InvitationError as error:
        return render(request, "accounts/invitation_accept.html", {"error": str(error)}, status=400)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if request.method == "POST":
        try:
            membership = services.invitation_accept(token=token, user=request.user, ip=client_ip(request))
        except InvitationError as error:
            return render(request, "accounts/invitation_accept.html", {"error": str(error)}, status=400)
        set_current_organization(request, membership)
        messages.success(request, f"You joined {membership.organization.name}.")
        return redirect("organization_detail", slug=membership.organization.slug)
    return render(request, "accounts/invitation_accept.html", {"invitation": invitation})
