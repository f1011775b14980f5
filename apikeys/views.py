"""API key pages: list, create (the secret shown once), detail and edit, revoke, rotate."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.current import current_membership
from accounts.http import AuthedRequest
from accounts.models import Membership
from accounts.net import client_ip
from accounts.views.access import membership_or_404, require_manager
from apikeys import selectors, services
from apikeys.errors import ApiKeyError
from apikeys.forms import KeyCreateForm, KeyRotateForm, KeySettingsForm
from apikeys.models import ApiKey
from apikeys.secrecy import uncacheable
from billing.selectors import NoDefaultPlan, plan_snapshot_for_organization
from routing.selectors import model_aliases_listed


def _key_or_404(membership: Membership, key_id: int) -> ApiKey:
    key = selectors.apikey_for_organization(organization=membership.organization, key_id=key_id)
    if key is None:
        raise Http404("No such key")
    return key


def _list_context(
    request: AuthedRequest, membership: Membership, form: KeyCreateForm | None = None
) -> dict[str, object]:
    return {
        "membership": membership,
        "organization": membership.organization,
        "keys": selectors.apikeys_for_organization(organization=membership.organization),
        "form": form or KeyCreateForm(),
        "may_issue": membership.can_manage and services.actor_may_issue(request.user),
    }


def _example_model(organization_id: int, key_models: list[str]) -> str:
    """A model the new key may call, so the snippets beside it work as pasted: the key's own list first, else the
    first the organization's plan allows."""
    if key_models:
        return key_models[0]
    try:
        plan = plan_snapshot_for_organization(organization_id=organization_id)
    except NoDefaultPlan:
        return "gpt-oss-20b"
    allowed = [alias.alias for alias in model_aliases_listed() if plan.allows(alias.alias)]
    return allowed[0] if allowed else "gpt-oss-20b"


def _secret_panel(
    request: AuthedRequest, membership: Membership, issued: services.IssuedKey, rotated: bool
) -> HttpResponse:
    context = {
        "membership": membership,
        "organization": membership.organization,
        "issued": issued,
        "rotated": rotated,
        "base_url": settings.PORTAL_BASE_URL,
        "example_model": _example_model(membership.organization_id, issued.key.allowed_models),
    }
    template = "apikeys/secret.html#panel" if request.htmx else "apikeys/secret.html"
    return uncacheable(render(request, template, context))


@login_required
@require_http_methods(["GET", "POST"])
def key_list(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    if request.method == "GET":
        return render(request, "apikeys/key_list.html", _list_context(request, membership))
    require_manager(membership)
    form = KeyCreateForm(request.POST)
    if form.is_valid():
        try:
            issued = services.apikey_issue(
                organization=membership.organization,
                actor=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
                allowed_models=form.cleaned_data["allowed_models"],
                rate_limit=form.cleaned_data["rate_limit"],
                metadata=form.cleaned_data["labels"],
                ip=client_ip(request),
            )
        except ApiKeyError as error:
            form.add_error(error.field if error.field in form.fields else None, str(error))
        else:
            return _secret_panel(request, membership, issued, rotated=False)
    return render(request, "apikeys/key_list.html", _list_context(request, membership, form), status=422)


@login_required
@require_http_methods(["GET", "POST"])
def key_detail(request: AuthedRequest, slug: str, key_id: int) -> HttpResponse:
    membership = membership_or_404(request, slug)
    key = _key_or_404(membership, key_id)
    initial = {
        "name": key.name,
        "allowed_models": ", ".join(key.allowed_models),
        "rate_limit": key.rate_limit_requests,
        "labels": "\n".join(f"{name}={value}" for name, value in key.metadata.items()),
    }
    form = KeySettingsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        require_manager(membership)
        if form.is_valid():
            try:
                services.apikey_update(
                    key=key,
                    actor=request.user,
                    ip=client_ip(request),
                    name=form.cleaned_data["name"],
                    allowed_models=form.cleaned_data["allowed_models"],
                    rate_limit=form.cleaned_data["rate_limit"],
                    metadata=form.cleaned_data["labels"],
                )
            except ApiKeyError as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            else:
                messages.success(request, "Key settings saved.")
                return redirect("key_detail", slug=slug, key_id=key.pk)
        status = 422
    context = {
        "membership": membership,
        "organization": membership.organization,
        "key": key,
        "form": form,
        "rotate_form": KeyRotateForm(),
    }
    return render(request, "apikeys/key_detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: AuthedRequest, slug: str, key_id: int) -> HttpResponse:
    """GET asks for confirmation (pages without JavaScript); POST revokes."""
    membership = membership_or_404(request, slug)
    require_manager(membership)
    key = _key_or_404(membership, key_id)
    if request.method == "GET":
        return render(request, "apikeys/key_revoke.html", {"membership": membership, "key": key})
    services.apikey_revoke(key=key, actor=request.user, ip=client_ip(request))
    messages.success(request, f"Revoked {key.name}. Requests with it are refused from now on.")
    if request.htmx:
        return render(request, "apikeys/key_list.html#keys", _list_context(request, membership))
    return redirect("key_list", slug=slug)


@login_required
@require_POST
def key_rotate(request: AuthedRequest, slug: str, key_id: int) -> HttpResponse:
    membership = membership_or_404(request, slug)
    require_manager(membership)
    key = _key_or_404(membership, key_id)
    form = KeyRotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose how long the old key keeps working.")
        return redirect("key_detail", slug=slug, key_id=key.pk)
    try:
        issued = services.apikey_rotate(
            key=key, actor=request.user, grace=form.cleaned_data["grace"], ip=client_ip(request)
        )
    except ApiKeyError as error:
        messages.error(request, str(error))
        return redirect("key_detail", slug=slug, key_id=key.pk)
    return _secret_panel(request, membership, issued, rotated=True)


@login_required
@require_GET
def current_keys(request: AuthedRequest) -> HttpResponse:
    """The navigation's "API keys" link: the keys of the organization currently worked in."""
    membership = current_membership(request)
    if membership is None:
        return redirect("organization_list")
    return redirect("key_list", slug=membership.organization.slug)
