"""Read-only admin for the usage ledger: support looks up a request id; nobody edits the ledger by hand."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from metering.models import UsageEvent, UsageRollup


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = (
        "request_id",
        "organization",
        "started_at",
        "stage",
        "outcome",
        "error_code",
        "model",
        "cost_units",
        "billed",
    )
    list_filter = ("stage", "outcome", "billed", "stream")
    search_fields = ("=request_id",)  # exact: the unique index answers it
    list_select_related = ("organization",)
    show_full_result_count = False  # a count over tens of millions of rows is too slow for a list page
    date_hierarchy = None


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ("organization", "granularity", "bucket_start", "key_id", "model", "requests", "cost_units")
    list_filter = ("granularity",)
    list_select_related = ("organization",)
    show_full_result_count = False
