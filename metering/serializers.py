"""Shapes of `/api/v1/usage` and `/api/v1/requests` (documented by drf-spectacular from these serializers)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from metering.events import OUTCOMES
from metering.explanations import explain
from metering.models import Outcome, UsageEvent
from metering.selectors import UsageTotals
from portal.error_catalogue import CATALOGUE

MAX_DAYS = 90


class UsageQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(
        min_value=1, max_value=MAX_DAYS, default=30, help_text="How many UTC days, today included."
    )


class RequestQuerySerializer(serializers.Serializer):
    key = serializers.IntegerField(required=False, min_value=1, help_text="Only requests made with this key id.")
    model = serializers.CharField(required=False, max_length=80, help_text="Only requests for this model alias.")
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False)
    error_code = serializers.ChoiceField(
        choices=sorted((code, kind.log_title) for code, kind in CATALOGUE.items()),
        required=False,
        help_text="Only requests that ended with this error code (the `error.code` the gateway sent).",
    )
    request_id = serializers.CharField(required=False, max_length=64)


class PlanSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class AllowanceSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='"short" (the rolling short window) or "weekly".')
    limit = serializers.IntegerField(help_text="Requests (weighted units) allowed in any rolling window.")
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    window_seconds = serializers.IntegerField()
    percent_used = serializers.IntegerField()
    warning = serializers.BooleanField(help_text="At or above 80% used.")
    next_free_at = serializers.DateTimeField(allow_null=True, help_text="When the oldest counted request frees up.")
    resets_at = serializers.DateTimeField(allow_null=True, help_text="When the whole window is clear again.")
    degraded = serializers.BooleanField(help_text="The live counters could not be read; numbers are placeholders.")


class OutcomesSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {outcome: serializers.IntegerField() for outcome in OUTCOMES}


class TotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Every request, refused ones included.")
    billed_requests = serializers.IntegerField(help_text="Requests that counted against the allowance.")
    cost_units = serializers.IntegerField(help_text="Allowance units those requests used (model-weighted).")
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    outcomes = OutcomesSerializer(help_text="Requests per outcome.")


class DayUsageSerializer(TotalsSerializer):
    day = serializers.DateField()


class KeyUsageSerializer(TotalsSerializer):
    key_id = serializers.IntegerField()
    name = serializers.CharField(help_text="Empty when the key no longer exists.")
    masked = serializers.CharField()


class ModelUsageSerializer(TotalsSerializer):
    model = serializers.CharField()


def totals_data(totals: UsageTotals) -> dict[str, Any]:
    """A UsageTotals as the plain mapping TotalsSerializer and its subclasses read."""
    return {
        "requests": totals.requests,
        "billed_requests": totals.billed_requests,
        "cost_units": totals.cost_units,
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "outcomes": dict(totals.outcomes or {}),
    }


class UsageSerializer(serializers.Serializer):
    organization = serializers.CharField(help_text="The organization's slug.")
    plan = PlanSerializer(allow_null=True)
    warning = serializers.BooleanField(help_text="Some allowance is at or above 80% used.")
    allowances = AllowanceSerializer(many=True)
    since = serializers.DateField(help_text="First UTC day of the period.")
    until = serializers.DateField(help_text="Last UTC day of the period (included).")
    totals = TotalsSerializer()
    by_day = DayUsageSerializer(many=True)
    by_key = KeyUsageSerializer(many=True)
    by_model = ModelUsageSerializer(many=True)


class ExplanationSerializer(serializers.Serializer):
    title = serializers.CharField(help_text='What happened, in a few words ("Revoked key").')
    what = serializers.CharField(help_text="What happened, in a sentence or two.")
    next_step = serializers.CharField(help_text="What to do about it.")


class UsageEventSerializer(serializers.ModelSerializer):
    key_id = serializers.IntegerField(source="reported_key_id")
    key_name = serializers.SerializerMethodField()
    explanation = serializers.SerializerMethodField()

    class Meta:
        model = UsageEvent
        fields: tuple[str, ...] = (
            "request_id",
            "started_at",
            "stage",
            "outcome",
            "status_code",
            "error_code",
            "explanation",
            "model",
            "served_model",
            "family",
            "plan",
            "allowance_class",
            "key_id",
            "key_name",
            "stream",
            "cost_units",
            "billed",
            "refunded",
            "prompt_tokens",
            "completion_tokens",
            "latency_ms",
            "accepted_at",
            "forwarded_at",
            "completed_at",
            "closed_at",
            "recorded_at",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_key_name(self, event: UsageEvent) -> str:
        return event.api_key.name if event.api_key is not None else ""

    @extend_schema_field(ExplanationSerializer(allow_null=True, help_text="Null for a success or a request in flight."))
    def get_explanation(self, event: UsageEvent) -> dict[str, str] | None:
        found = explain(event)  # times in UTC, as everywhere in the API
        return None if found is None else asdict(found)
