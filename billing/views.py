"""Plan pages: the current plan in plain words, what each plan includes, upgrade requests (owners only), the credit
history and the list of monthly statements. Every member sees them; other organizations get 404. A statement's own
page reads usage, so metering serves it (metering/statement_views.py)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts import selectors as account_selectors
from accounts.http import AuthedRequest
from accounts.models import Membership
from accounts.net import client_ip
from accounts.views.access import membership_or_404
from billing.forms import UpgradeRequestForm
from billing.models import Plan
from billing.plan_terms import plan_offer
from billing.selectors import NoDefaultPlan, plan_for_organization, plans_offered, subscription_current
from billing.statements import ledger_balance, ledger_history, statement_months
from billing.upgrades import UpgradeError, upgrade_request, upgrade_requests_open


def _require_owner(membership: Membership) -> None:
    if not membership.is_owner:
        raise PermissionDenied("Only owners can change the plan.")


def _current_plan(membership: Membership) -> Plan | None:
    try:
        return plan_for_organization(organization_id=membership.organization_id)
    except NoDefaultPlan:
        return None


def _plan_context(membership: Membership) -> dict[str, object]:
    organization = membership.organization
    current = _current_plan(membership)
    open_requests = {request.to_plan_id: request for request in upgrade_requests_open(organization=organization)}
    offered = plans_offered().select_related("degrade_to").prefetch_related("entitled_models")
    offers = [plan_offer(plan=plan, current=current, open_requests=open_requests) for plan in offered]
    subscription = subscription_current(organization_id=organization.pk)
    return {
        "membership": membership,
        "organization": organization,
        "current": plan_offer(plan=current, current=current) if current is not None else None,
        "since": subscription.started_at if subscription is not None else None,
        "offers": offers,
        "owners": [m for m in account_selectors.organization_members(organization=organization) if m.is_owner],
        "balance_micro": ledger_balance(organization_id=organization.pk),
        "history": ledger_history(organization_id=organization.pk),
        "months": statement_months(organization=organization),
        "form": UpgradeRequestForm(),
    }


@login_required
@require_GET
def plan_detail(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    return render(request, "billing/plan.html", _plan_context(membership))


@login_required
@require_POST
def plan_upgrade_request(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    _require_owner(membership)
    form = UpgradeRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(error) for errors in form.errors.values() for error in errors))
    else:
        plan: Plan = form.cleaned_data["plan"]
        try:
            upgrade_request(
                organization=membership.organization,
                to_plan=plan,
                actor=request.user,
                note=form.cleaned_data["note"],
                ip=client_ip(request),
            )
            messages.success(
                request, f"Thanks: we have your request for {plan.name} and will be in touch. Nothing is charged."
            )
        except UpgradeError as error:
            messages.error(request, str(error))
    if request.htmx:
        return render(request, "billing/plan.html#plans", _plan_context(membership))
    return redirect("plan_detail", slug=slug)
