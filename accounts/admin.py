from __future__ import annotations

from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest

from accounts.forms import AdminUserChangeForm, AdminUserCreationForm
from accounts.models import AuditEvent, Invitation, Membership, Organization, User, Wallet


class WalletInline(admin.TabularInline):
    model = Wallet
    extra = 0
    readonly_fields = ("address", "chain_id", "created_at", "last_sign_in_at")
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a wallet is linked only by signing a message


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = AdminUserChangeForm
    add_form = AdminUserCreationForm
    ordering = ("email",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    search_fields = ("email", "name", "wallets__address")
    list_filter = ("is_staff", "is_active")
    inlines: ClassVar = [WalletInline]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "usable_password", "password1", "password2")}),)
    readonly_fields: ClassVar = ("last_login", "date_joined")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "personal", "created_at")
    search_fields = ("name", "slug", "memberships__user__email")
    list_filter = ("personal",)
    inlines: ClassVar = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("email", "organization", "role", "status", "expires_at")
    list_filter = ("status", "role")
    search_fields = ("email", "organization__name")
    readonly_fields = ("organization", "email", "role", "invited_by", "created_at", "accepted_by", "accepted_at")


@admin.register(Wallet)
class WalletAdmin(admin.ModelAdmin):
    list_display = ("address", "user", "chain_id", "created_at", "last_sign_in_at")
    search_fields = ("address", "user__email")
    readonly_fields = ("address", "user", "chain_id", "created_at", "last_sign_in_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only for everyone, operators included."""

    list_display = ("created_at", "action", "actor", "organization", "target", "ip")
    list_filter = ("action",)
    search_fields = ("action", "target", "actor__email", "organization__name")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
