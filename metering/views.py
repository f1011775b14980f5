"""Portal pages over usage: the dashboard (the page after sign-in), the usage page (refreshes itself with htmx) and
the models page. Read-only: every member of the organization sees them; other organizations get 404. The request
log is in metering/request_views.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from accounts.current import current_membership
from accounts.http import AuthedRequest
from accounts.models import Membership
from accounts.views.access import membership_or_404
from apikeys.models import KeyStatus
from apikeys.selectors import apikeys_for_organization
from billing.selectors import NoDefaultPlan, PlanSnapshot
from metering import selectors
from metering.charts import Chart, requests_chart
from metering.presentation import AllowanceSummary, allowance_summary, zone_for
from routing.models import ModelAlias
from routing.selectors import model_aliases_listed

REFRESH_SECONDS = 5  # how often an open usage page asks for fresh numbers
SUMMARY_DAYS = 7
CHART_HOURS = 24
CHART_DAYS = 14


def _summary(membership: Membership, zone: tzinfo) -> tuple[PlanSnapshot | None, AllowanceSummary | None]:
    try:
        status = selectors.allowance_status(organization_id=membership.organization_id)
    except NoDefaultPlan:
        return None, None
    return status.plan, allowance_summary(status, now=datetime.now(UTC), zone=zone)


def _allowed_models(plan: PlanSnapshot | None) -> list[ModelAlias]:
    if plan is None:
        return []
    return [alias for alias in model_aliases_listed() if plan.allows(alias.alias)]


def _base(membership: Membership, request: AuthedRequest) -> dict[str, object]:
    zone = zone_for(request)
    plan, summary = _summary(membership, zone)
    return {
        "membership": membership,
        "organization": membership.organization,
        "plan": plan,
        "summary": summary,
        "zone": zone,
    }


def _current_or_list(request: AuthedRequest, name: str) -> HttpResponse:
    membership = current_membership(request)
    if membership is None:
        return redirect("organization_list")
    return redirect(name, slug=membership.organization.slug)


@login_required
@require_GET
def current_dashboard(request: AuthedRequest) -> HttpResponse:
    """Where sign-in lands (LOGIN_REDIRECT_URL): the dashboard of the organization worked in."""
    return _current_or_list(request, "dashboard")


@login_required
@require_GET
def current_usage(request: AuthedRequest) -> HttpResponse:
    return _current_or_list(request, "usage")


@login_required
@require_GET
def dashboard(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    context = _base(membership, request)
    keys = list(apikeys_for_organization(organization=membership.organization))
    active = [key for key in keys if key.effective_status() == KeyStatus.ACTIVE]
    models = _allowed_models(context["plan"])  # type: ignore[arg-type]
    context.update(
        {
            "active_keys": len(active),
            "all_keys": len(keys),
            "models": models,
            "example_model": models[0].alias if models else "gpt-oss-20b",
            "base_url": settings.PORTAL_BASE_URL,
        }
    )
    return render(request, "metering/dashboard.html", context)


def _chart(organization_id: int, *, hourly: bool, zone: tzinfo) -> Chart:
    now = datetime.now(UTC)
    if hourly:
        hour = now.replace(minute=0, second=0, microsecond=0)
        since_hour, until_hour = hour - timedelta(hours=CHART_HOURS - 1), hour + timedelta(hours=1)
        hours = selectors.usage_by_hour(organization_id=organization_id, since=since_hour, until=until_hour)
        points = [(h.hour, h.totals.requests, h.totals.requests - _ok(h.totals)) for h in hours]
        return requests_chart(points, hourly=True, zone=zone, label_every=4)
    since, until = selectors.usage_days(days=CHART_DAYS)
    days = selectors.usage_by_day(organization_id=organization_id, since=since, until=until)
    starts = [datetime(d.day.year, d.day.month, d.day.day, tzinfo=UTC) for d in days]
    points = [(s, d.totals.requests, d.totals.requests - _ok(d.totals)) for s, d in zip(starts, days, strict=True)]
    return requests_chart(points, hourly=False, zone=UTC, label_every=2)  # UTC days: the roll-ups' buckets


def _ok(totals: selectors.UsageTotals) -> int:
    return (totals.outcomes or {}).get("ok", 0)


@login_required
@require_GET
def usage(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    context = _base(membership, request)
    organization_id = membership.organization_id
    hourly = request.GET.get("chart", "hour") != "day"
    since, until = selectors.usage_days(days=SUMMARY_DAYS)
    context.update(
        {
            "hourly": hourly,
            "chart": _chart(organization_id, hourly=hourly, zone=context["zone"]),  # type: ignore[arg-type]
            "week": selectors.usage_totals(organization_id=organization_id, since=since, until=until),
            "week_since": since,
            "by_key": selectors.usage_by_key(organization_id=organization_id, since=since, until=until),
            "by_model": selectors.usage_by_model(organization_id=organization_id, since=since, until=until),
            "refresh_seconds": REFRESH_SECONDS,
            "updated_at": datetime.now(UTC).astimezone(context["zone"]),  # type: ignore[arg-type]
        }
    )
    template = "metering/usage.html#live" if request.htmx else "metering/usage.html"
    response = render(request, template, context)
    response["Cache-Control"] = "no-store"  # live numbers: never a stale copy from a cache
    return response


@login_required
@require_GET
def models(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    context = _base(membership, request)
    plan: PlanSnapshot | None = context["plan"]  # type: ignore[assignment]
    rows = [(alias, plan is not None and plan.allows(alias.alias)) for alias in model_aliases_listed()]
    context["rows"] = rows
    context["degrade_to"] = plan.degrade_to if plan is not None and plan.degrades else None
    return render(request, "metering/models.html", context)
