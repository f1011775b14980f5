"""The request log: recent requests with filters and a search by request id, and one request's lifecycle
(accepted → forwarded → completed → recorded) with its error explained in the product's words. Read-only; other
organizations get 404."""

from __future__ import annotations

from datetime import tzinfo

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthedRequest
from accounts.views.access import membership_or_404
from apikeys.models import ApiKey
from apikeys.selectors import apikeys_for_organization
from metering import selectors
from metering.explanations import ERROR_CODE_CHOICES, counted_sentence, explain, lifecycle
from metering.models import Outcome, UsageEvent
from metering.presentation import zone_for
from routing.selectors import model_aliases_listed

PAGE_SIZE = 50


class RequestFilterForm(forms.Form):
    """The log's filters; a value that is not one of the choices is a 400 with the reason, not an empty page."""

    request_id = forms.CharField(required=False, max_length=64, strip=True, label="Request id")
    key = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Key")
    model = forms.CharField(required=False, max_length=80, strip=True, label="Model")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices], label="Outcome")
    error_code = forms.ChoiceField(required=False, choices=[("", "Any error"), *ERROR_CODE_CHOICES], label="Error")
    page = forms.IntegerField(required=False, min_value=1)

    def __init__(self, *args: object, keys: list[ApiKey], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["key"].choices = [("", "Any key"), *((key.pk, f"{key.name} ({key.masked})") for key in keys)]  # type: ignore[attr-defined]


def _explained(event: UsageEvent, zone: tzinfo) -> dict[str, object]:
    return {"event": event, "explanation": explain(event, zone=zone)}


@login_required
@require_GET
def request_log(request: AuthedRequest, slug: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    organization = membership.organization
    keys = list(apikeys_for_organization(organization=organization).order_by("name", "pk"))
    form = RequestFilterForm(request.GET or None, keys=keys)
    zone = zone_for(request)
    context: dict[str, object] = {
        "membership": membership,
        "organization": organization,
        "form": form,
        "zone": zone,
        "models": [alias.alias for alias in model_aliases_listed()],
    }
    status = 200
    if request.GET and not form.is_valid():
        context.update({"rows": [], "page": None, "invalid": True})
        status = 422 if request.htmx else 400  # htmx swaps 422s in (base.html)
    else:
        data = form.cleaned_data if request.GET else {}
        events = selectors.usage_events_recent(
            organization_id=organization.pk,
            key_id=data.get("key"),
            model=data.get("model") or None,
            outcome=data.get("outcome") or None,
            error_code=data.get("error_code") or None,
            request_id=data.get("request_id") or None,
        )
        page = Paginator(events, PAGE_SIZE).get_page(data.get("page") or 1)
        context.update({"rows": [_explained(event, zone) for event in page], "page": page, "invalid": False})
        query = request.GET.copy()
        query.pop("page", None)
        context["query"] = query.urlencode()
    template = "metering/requests.html#results" if request.htmx else "metering/requests.html"
    return render(request, template, context, status=status)


@login_required
@require_GET
def request_detail(request: AuthedRequest, slug: str, request_id: str) -> HttpResponse:
    membership = membership_or_404(request, slug)
    event = selectors.usage_event_for_request(organization_id=membership.organization_id, request_id=request_id)
    if event is None:
        raise Http404("No such request in this organization's log")
    zone = zone_for(request)
    context = {
        "membership": membership,
        "organization": membership.organization,
        "event": event,
        "explanation": explain(event, zone=zone),
        "counted": counted_sentence(event),
        "steps": lifecycle(event),
        "zone": zone,
    }
    return render(request, "metering/request_detail.html", context)
