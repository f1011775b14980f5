from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.net import client_ip
from apikeys.models import ApiKey
from apikeys.services import apikey_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "masked", "organization", "status", "created_at", "last_used_at", "expires_at")
    list_filter = ("status",)
    search_fields = ("prefix", "last4", "name", "organization__name", "organization__slug")
    readonly_fields = (
        "organization",
        "created_by",
        "digest",
        "prefix",
        "last4",
        "status",
        "created_at",
        "revoked_at",
        "revoked_by",
        "last_used_at",
        "rotated_from",
    )
    fields = (
        "name",
        "organization",
        "prefix",
        "last4",
        "digest",
        "status",
        "scopes",
        "allowed_models",
        "rate_limit_requests",
        "metadata",
        "expires_at",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
        "rotated_from",
    )
    actions = ("revoke_selected",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are issued through the portal, the API or `manage.py createapikey`

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # edits go through the services so caches are invalidated and audit events written

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = 0
        for key in queryset:
            apikey_revoke(key=key, actor=request.user, ip=client_ip(request))  # type: ignore[arg-type]
            count += 1
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)
