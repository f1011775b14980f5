"""API keys: Portal product keys owned by an organization. Only a SHA-256 digest of the secret is stored."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import Organization


class Scope(models.TextChoices):
    INFERENCE = "inference", "Inference (/v1)"
    MANAGE = "manage", "Manage (management API)"


class KeyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class ApiKey(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=20, editable=False, help_text="The start of the key, shown in lists.")
    last4 = models.CharField(max_length=4, editable=False)
    status = models.CharField(max_length=10, choices=KeyStatus.choices, default=KeyStatus.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Written by the usage pipeline.")
    scopes = models.JSONField(default=list)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Empty: every model the plan allows.")
    rate_limit_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per the plan's key window; empty: the plan's limit."
    )
    metadata = models.JSONField(default=dict, blank=True)
    rotated_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to"
    )

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        indexes: ClassVar = [models.Index(fields=["organization", "-created_at"], name="apikeys_org_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{self.prefix}…{self.last4}"

    def effective_status(self, now: datetime | None = None) -> str:
        """Revoked wins; an active key past its expiry is expired even before the sweep marks it."""
        if self.status == KeyStatus.REVOKED:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return KeyStatus.EXPIRED
        return str(self.status)
