"""The monthly statement page under the plan pages (/orgs/<slug>/plan/statements/<year>/<month>/): the ledger's
entries of the month beside its usage. Served by metering because the statement reads usage and billing imports no
metering code; the URL, its name and the template (billing/statement.html) are the plan pages'. Every member sees
it; other organizations get 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthedRequest
from accounts.views.access import membership_or_404
from billing.statements import statement_exists, statement_months
from metering.statements import statement_for


@login_required
@require_GET
def plan_statement(request: AuthedRequest, slug: str, year: str, month: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    organization = membership.organization
    if not statement_exists(organization=organization, year=int(year), month=int(month)):
        raise Http404("No statement for this month")
    statement = statement_for(organization=organization, year=int(year), month=int(month))
    months = statement_months(organization=organization, limit=1200)
    index = months.index(statement.starts_at.date())
    context = {
        "membership": membership,
        "organization": organization,
        "statement": statement,
        "newer": months[index - 1] if index > 0 else None,
        "older": months[index + 1] if index + 1 < len(months) else None,
    }
    partial = "#statement" if request.htmx else ""
    return render(request, f"billing/statement.html{partial}", context)
