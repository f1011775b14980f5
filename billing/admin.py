"""Operators' admin for plans and subscriptions. Thin: writes go through billing.services (audited, and the gateway
drops its cached plan within a second). Subscriptions are history: "adding" one moves an organization to a plan."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import Plan, Subscription
from billing.services import PlanNotAvailable, plan_delete, plan_save, plan_set_default, subscription_change


def _ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _actor(request: HttpRequest) -> Any:
    return request.user if request.user.is_authenticated else None


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "is_default",
        "active",
        "key_rate",
        "allowances",
        "entitled",
        "over_limit",
        "sort_order",
    )
    list_filter = ("active", "is_default", "over_limit")
    search_fields = ("slug", "name")
    readonly_fields = ("is_default",)
    filter_horizontal = ("entitled_models",)
    actions = ["make_default"]
    fieldsets = (
        (None, {"fields": ("slug", "name", "is_default", "active")}),
        ("Per API key", {"fields": (("key_rate_requests", "key_rate_window_seconds"),)}),
        (
            "Per organization (rolling windows)",
            {"fields": (("short_requests", "short_window_seconds"), ("weekly_requests", "weekly_window_seconds"))},
        ),
        ("Models", {"fields": ("all_models", "entitled_models", "over_limit", "degrade_to")}),
        ("Plan page", {"fields": ("price_text", "description", "upgrade_to", "sort_order")}),
    )

    @admin.display(description="key rate limit")
    def key_rate(self, plan: Plan) -> str:
        return f"{plan.key_rate_requests} / {_duration(plan.key_rate_window_seconds)}"

    @admin.display(description="allowances")
    def allowances(self, plan: Plan) -> str:
        short = f"{plan.short_requests} / {_duration(plan.short_window_seconds)}"
        return f"{short}, {plan.weekly_requests} / {_duration(plan.weekly_window_seconds)}"

    @admin.display(description="models")
    def entitled(self, plan: Plan) -> str:
        if plan.all_models:
            return "all"
        return ", ".join(alias.alias for alias in plan.entitled_models.all()) or "none"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).prefetch_related("entitled_models")

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        plan_save(plan=obj, actor=_actor(request), ip=_ip(request), changed=form.changed_data)

    def has_delete_permission(self, request: HttpRequest, obj: Plan | None = None) -> bool:
        if obj is not None and (obj.is_default or obj.subscriptions.exists()):
            return False  # the default plan and plans with history stay; deactivate them instead
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Plan) -> None:
        plan_delete(plan=obj, actor=_actor(request), ip=_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        for plan in queryset:
            try:
                plan_delete(plan=plan, actor=_actor(request), ip=_ip(request))
            except PlanNotAvailable as error:
                self.message_user(request, f"{plan}: {error}", messages.ERROR)

    @admin.action(description="Make the default plan (for organizations without a subscription)")
    def make_default(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one plan to be the default.", messages.ERROR)
            return
        plan = queryset.get()
        try:
            plan_set_default(plan=plan, actor=_actor(request), ip=_ip(request))
        except PlanNotAvailable as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"{plan} is the default plan.", messages.SUCCESS)


class SubscriptionChangeForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ("organization", "plan")

    def validate_constraints(self) -> None:
        """The service ends the current subscription before it opens the new one, so "one current" holds."""

    def clean_plan(self) -> Plan:
        plan: Plan = self.cleaned_data["plan"]
        if not plan.active:
            raise forms.ValidationError("This plan is not active and takes no new subscriptions.")
        return plan


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("organization", "plan", "started_at", "ended_at", "changed_by")
    list_filter = ("plan", ("ended_at", admin.EmptyFieldListFilter))
    search_fields = ("organization__name", "organization__slug")
    list_select_related = ("organization", "plan", "changed_by")
    raw_id_fields = ("organization",)
    date_hierarchy = "started_at"

    def get_form(
        self, request: HttpRequest, obj: Subscription | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = SubscriptionChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Subscription | None = None) -> Any:
        if obj is None:
            return ("organization", "plan")
        return ("organization", "plan", "started_at", "ended_at", "changed_by")

    def get_readonly_fields(self, request: HttpRequest, obj: Subscription | None = None) -> Any:
        return () if obj is None else ("organization", "plan", "started_at", "ended_at", "changed_by")

    def has_delete_permission(self, request: HttpRequest, obj: Subscription | None = None) -> bool:
        return False  # history

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        if change:
            return
        created = subscription_change(
            organization=obj.organization, plan=obj.plan, actor=_actor(request), ip=_ip(request)
        )
        obj.pk, obj.started_at, obj.changed_by = created.pk, created.started_at, created.changed_by
