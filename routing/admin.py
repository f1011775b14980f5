"""Operators' admin for pools, targets and model aliases. Thin: every write goes through routing.services, so each
change is audited and reaches the gateway workers within a second."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from accounts.net import client_ip
from routing.health import health_board
from routing.models import ModelAlias, RouterPool, RouterTarget
from routing.services import (
    routing_object_delete,
    routing_object_save,
    target_disable,
    target_drain,
    target_enable,
    target_undrain,
    targets_probe,
)


def _ip(request: HttpRequest) -> str | None:
    return client_ip(request)


def _actor(request: HttpRequest) -> Any:
    return request.user if request.user.is_authenticated else None


class ServiceSavesMixin:
    """Saves and deletes through routing.services instead of the model directly."""

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm[Any], change: bool) -> None:
        routing_object_save(obj=obj, actor=_actor(request), ip=_ip(request), changed=form.changed_data)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        routing_object_delete(obj=obj, actor=_actor(request), ip=_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            routing_object_delete(obj=obj, actor=_actor(request), ip=_ip(request))


class TargetDisplayMixin:
    @admin.display(description="key set", boolean=True)
    def key_set(self, target: RouterTarget) -> bool:
        """Whether the named variable is set in this web process's environment; its value is never shown."""
        return target.key_is_set

    @admin.display(description="probe")
    def probe(self, target: RouterTarget) -> str:
        if target.last_probed_at is None:
            return "not probed yet"
        latency = f", {target.latency_ms:.0f} ms" if target.latency_ms is not None else ""
        error = f" ({target.last_error})" if target.last_error else ""
        return f"{target.get_health_status_display()}{latency} at {target.last_probed_at:%H:%M:%S}{error}"


class RouterTargetInline(TargetDisplayMixin, admin.TabularInline):
    model = RouterTarget
    extra = 0
    fields = (
        "name",
        "protocol",
        "base_url",
        "session_id",
        "api_key_env",
        "key_set",
        "weight",
        "enabled",
        "draining",
        "probe",
    )
    readonly_fields = ("key_set", "probe")


@admin.register(RouterPool)
class RouterPoolAdmin(ServiceSavesMixin, admin.ModelAdmin):
    list_display = ("slug", "name", "enabled", "target_count", "alias_list")
    list_filter = ("enabled",)
    search_fields = ("slug", "name")
    inlines: ClassVar = [RouterTargetInline]

    @admin.display(description="targets")
    def target_count(self, pool: RouterPool) -> int:
        return pool.targets.count()

    @admin.display(description="model aliases")
    def alias_list(self, pool: RouterPool) -> str:
        return ", ".join(pool.aliases.values_list("alias", flat=True))

    def save_formset(
        self, request: HttpRequest, form: ModelForm[Any], formset: BaseInlineFormSet[Any, Any, Any], change: bool
    ) -> None:
        for obj in formset.save(commit=False):
            routing_object_save(obj=obj, actor=_actor(request), ip=_ip(request))
        for obj in formset.deleted_objects:
            routing_object_delete(obj=obj, actor=_actor(request), ip=_ip(request))


@admin.register(RouterTarget)
class RouterTargetAdmin(TargetDisplayMixin, ServiceSavesMixin, admin.ModelAdmin):
    list_display = (
        "__str__",
        "protocol",
        "weight",
        "enabled",
        "draining",
        "health_status",
        "probe",
        "ejection",
        "key_set",
    )
    list_filter = ("pool", "protocol", "enabled", "draining", "health_status")
    search_fields = ("name", "pool__slug", "base_url")
    list_select_related = ("pool",)
    readonly_fields = ("key_set", "health_status", "latency_ms", "last_error", "last_probed_at")
    actions = ["drain", "undrain", "enable", "disable", "probe_now"]

    @admin.display(description="passive health")
    def ejection(self, target: RouterTarget) -> str:
        state = health_board().describe_sync([target.id]).get(target.id)
        if state is None:
            return "ok"
        if state.ejected_until is not None:
            return "ejected (cooldown or trial)"
        return f"{state.failures} failure(s) in a row"

    def _each(self, request: HttpRequest, queryset: QuerySet[RouterTarget], service: Any, verb: str) -> None:
        changed = sum(bool(service(target=t, actor=_actor(request), ip=_ip(request))) for t in queryset)
        self.message_user(request, f"{changed} target(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Drain: finish in-flight requests, take no new ones")
    def drain(self, request: HttpRequest, queryset: QuerySet[RouterTarget]) -> None:
        self._each(request, queryset, target_drain, "draining")

    @admin.action(description="Stop draining")
    def undrain(self, request: HttpRequest, queryset: QuerySet[RouterTarget]) -> None:
        self._each(request, queryset, target_undrain, "back in rotation")

    @admin.action(description="Enable (and stop draining)")
    def enable(self, request: HttpRequest, queryset: QuerySet[RouterTarget]) -> None:
        self._each(request, queryset, target_enable, "enabled")

    @admin.action(description="Disable")
    def disable(self, request: HttpRequest, queryset: QuerySet[RouterTarget]) -> None:
        self._each(request, queryset, target_disable, "disabled")

    @admin.action(description="Probe now")
    def probe_now(self, request: HttpRequest, queryset: QuerySet[RouterTarget]) -> None:
        results = targets_probe(target_ids=list(queryset.values_list("id", flat=True)))
        healthy = sum(result.healthy for result in results)
        self.message_user(request, f"Probed {len(results)} enabled target(s): {healthy} healthy.", messages.INFO)


@admin.register(ModelAlias)
class ModelAliasAdmin(ServiceSavesMixin, admin.ModelAdmin):
    list_display = ("alias", "pool", "family", "weight", "upstream_model", "enabled")
    list_filter = ("enabled", "family", "pool")
    search_fields = ("alias", "family", "upstream_model", "description")
    list_select_related = ("pool",)
