"""`/api/v1/usage` (allowance state and roll-ups) and `/api/v1/requests` (the request log), organization-scoped.

Thin: reads go through metering.selectors. Wire them into the management API with `register(router)`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import BaseRouter

from apikeys.api_access import api_caller
from billing.selectors import NoDefaultPlan
from metering import selectors
from metering.models import UsageEvent
from metering.serializers import (
    RequestQuerySerializer,
    UsageEventSerializer,
    UsageQuerySerializer,
    UsageSerializer,
    totals_data,
)
from portal.pagination import CheckedCursorPagination


def register(router: BaseRouter) -> None:
    """Add the usage endpoints to the management API's router (portal/api_urls.py)."""
    router.register("usage", UsageViewSet, basename="usage")
    router.register("requests", RequestViewSet, basename="usage-request")


class _OneObjectSchema(AutoSchema):
    """`/api/v1/usage` answers one object: a router's `list` route, documented as what it returns."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


class UsageViewSet(viewsets.ViewSet):
    """The organization's plan, what is left of each allowance, and its usage by day, key and model."""

    serializer_class = UsageSerializer
    schema = _OneObjectSchema()

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageSerializer)
    def list(self, request: Request) -> Response:
        caller = api_caller(request)
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        organization_id = caller.organization.pk
        since, until = selectors.usage_days(days=query.validated_data["days"])
        try:
            status = selectors.allowance_status(organization_id=organization_id)
        except NoDefaultPlan:
            status = None
        days = selectors.usage_by_day(organization_id=organization_id, since=since, until=until)
        keys = selectors.usage_by_key(organization_id=organization_id, since=since, until=until)
        models = selectors.usage_by_model(organization_id=organization_id, since=since, until=until)
        totals = selectors.usage_totals(organization_id=organization_id, since=since, until=until)
        data: dict[str, Any] = {
            "organization": caller.organization.slug,
            "plan": status.plan if status is not None else None,
            "warning": status.warning if status is not None else False,
            "allowances": status.allowances if status is not None else [],
            "since": since,
            "until": until - timedelta(days=1),  # the last day included
            "totals": totals_data(totals),
            "by_day": [{"day": day.day, **totals_data(day.totals)} for day in days],
            "by_key": [
                {"key_id": key.key_id, "name": key.name, "masked": key.masked, **totals_data(key.totals)}
                for key in keys
            ],
            "by_model": [{"model": model.model, **totals_data(model.totals)} for model in models],
        }
        return Response(UsageSerializer(data).data)


class RequestPagination(CheckedCursorPagination):
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    ordering = ("-started_at", "-id")


class RequestViewSet(viewsets.GenericViewSet):
    """Recent requests of the organization, newest first, refused ones included."""

    serializer_class = UsageEventSerializer
    pagination_class = RequestPagination
    lookup_field = "request_id"
    lookup_value_regex = r"[A-Za-z0-9_.:-]{1,64}"
    queryset = UsageEvent.objects.none()  # for the schema generator only: reads go through the selectors

    @extend_schema(parameters=[RequestQuerySerializer])
    def list(self, request: Request) -> Response:
        caller = api_caller(request)
        query = RequestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        events = selectors.usage_events_recent(
            organization_id=caller.organization.pk,
            key_id=filters.get("key"),
            model=filters.get("model"),
            outcome=filters.get("outcome"),
            error_code=filters.get("error_code"),
            request_id=filters.get("request_id"),
        )
        page = self.paginate_queryset(events)
        return self.get_paginated_response(UsageEventSerializer(page, many=True).data)

    @extend_schema(parameters=[OpenApiParameter("request_id", str, OpenApiParameter.PATH)])
    def retrieve(self, request: Request, request_id: str | None = None) -> Response:
        """One request: was it accepted, forwarded, completed, recorded?"""
        caller = api_caller(request)
        event = selectors.usage_event_for_request(organization_id=caller.organization.pk, request_id=request_id or "")
        if event is None:
            raise NotFound("No such request.")
        return Response(UsageEventSerializer(event).data)
