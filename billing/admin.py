"""Operators' admin for plans and subscriptions. Thin: writes go through billing.services (audited, and the gateway
drops its cached plan within a second). Subscriptions are history: "adding" one moves an organization to a plan."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.net import client_ip
from billing.forms import LedgerOperatorEntryForm
from billing.ledger import ledger_adjust, ledger_grant
from billing.models import LedgerEntry, LedgerKind, Plan, Subscription, UpgradeRequest
from billing.services import PlanNotAvailable, plan_delete, plan_save, plan_set_default, subscription_change
from billing.templatetags.credits import signed_credits
from billing.upgrades import upgrade_request_close


def _ip(request: HttpRequest) -> str | None:
    return client_ip(request)


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


# Ledger and upgrade requests. The ledger is append-only: the admin lists entries read-only and "adds" only grants
# and adjustments, through billing.ledger (audited); a mistake is corrected by another adjustment.


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "kind", "amount", "source", "memo")
    list_filter = ("kind",)
    search_fields = ("organization__name", "organization__slug", "memo", "payment_ref")
    list_select_related = ("organization", "created_by")
    raw_id_fields = ("organization",)
    date_hierarchy = "created_at"

    @admin.display(description="amount (credits)", ordering="amount_micro")
    def amount(self, entry: LedgerEntry) -> str:
        return signed_credits(entry.amount_micro)

    @admin.display(description="source")
    def source(self, entry: LedgerEntry) -> str:
        if entry.kind == LedgerKind.USAGE and entry.period_start and entry.period_end:
            return f"usage {entry.period_start:%Y-%m-%d %H:%M} to {entry.period_end:%Y-%m-%d %H:%M} UTC"
        if entry.payment_ref:
            return f"payment {entry.payment_ref}"
        return f"by {entry.created_by}" if entry.created_by_id else ""

    def get_form(
        self, request: HttpRequest, obj: LedgerEntry | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = LedgerOperatorEntryForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: LedgerEntry | None = None) -> Any:
        if obj is None:
            return ("organization", "kind", "amount", "memo")
        return (
            "organization",
            "kind",
            "amount_micro",
            "memo",
            "created_at",
            "created_by",
            ("period_start", "period_end", "cost_units"),
            "payment_ref",
        )

    def has_change_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False  # entries are never edited: the change page is a read-only view

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: LedgerEntry, form: Any, change: bool) -> None:
        service = ledger_grant if form.cleaned_data["kind"] == LedgerKind.GRANT else ledger_adjust
        entry = service(
            organization=form.cleaned_data["organization"],
            amount_micro=form.amount_micro,
            memo=form.cleaned_data["memo"],
            actor=request.user,  # type: ignore[arg-type]
            ip=_ip(request),
        )
        obj.pk, obj.created_at, obj.created_by, obj.amount_micro = (
            entry.pk,
            entry.created_at,
            entry.created_by,
            entry.amount_micro,
        )
        obj._state.adding = False


@admin.register(UpgradeRequest)
class UpgradeRequestAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "from_plan", "to_plan", "requested_by", "status", "note")
    list_filter = ("status", "to_plan")
    search_fields = ("organization__name", "organization__slug", "requested_by__email")
    list_select_related = ("organization", "from_plan", "to_plan", "requested_by")
    date_hierarchy = "created_at"
    actions = ["close_requests"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # owners make requests from the plan page

    def has_change_permission(self, request: HttpRequest, obj: UpgradeRequest | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UpgradeRequest | None = None) -> bool:
        return False  # history: close instead

    @admin.action(description="Close (followed up; change the subscription separately)")
    def close_requests(self, request: HttpRequest, queryset: QuerySet[UpgradeRequest]) -> None:
        closed = sum(
            upgrade_request_close(request=upgrade, actor=_actor(request), ip=_ip(request)) for upgrade in queryset
        )
        self.message_user(request, f"Closed {closed} request{'s' if closed != 1 else ''}.", messages.SUCCESS)
