from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apikeys.models import ApiKey, Scope
from apikeys.services import GRACE_PERIODS

RATE_LIMIT_HELP = (
    "Requests per the plan's key window for this key: 1 to the plan's limit per key (1,000,000 when no plan "
    "applies). Null or absent: the plan's limit."
)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo in a request is reported instead of silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    masked = serializers.CharField(read_only=True)
    created_by = serializers.SerializerMethodField()
    rate_limit = serializers.IntegerField(source="rate_limit_requests", allow_null=True)

    class Meta:
        model = ApiKey
        fields: tuple[str, ...] = (
            "id",
            "name",
            "masked",
            "prefix",
            "last4",
            "status",
            "scopes",
            "allowed_models",
            "rate_limit",
            "metadata",
            "created_at",
            "created_by",
            "expires_at",
            "last_used_at",
            "revoked_at",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_status(self, key: ApiKey) -> str:
        return key.effective_status()

    def get_created_by(self, key: ApiKey) -> str | None:
        return str(key.created_by) if key.created_by else None


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), min_length=1, default=[Scope.INFERENCE]
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    rate_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text=RATE_LIMIT_HELP)
    metadata = serializers.DictField(child=serializers.CharField(max_length=200, allow_blank=True), required=False)


class ApiKeyUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField(max_length=100), required=False, max_length=50)
    rate_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, help_text=RATE_LIMIT_HELP)
    metadata = serializers.DictField(child=serializers.CharField(max_length=200, allow_blank=True), required=False)


class ApiKeyRotateSerializer(StrictSerializer):
    grace = serializers.ChoiceField(choices=sorted(GRACE_PERIODS), default="none")


class IssuedKeySerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True, help_text="The full key. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = (*ApiKeySerializer.Meta.fields, "secret")
        read_only_fields = fields
