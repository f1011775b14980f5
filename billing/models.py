"""Plans (what an organization may do) and subscriptions (which plan an organization is on, with history).

A plan holds exactly the limits the specs ask for and no more: a per-key rate limit, and two rolling organization
allowances, a short window and a weekly one (DESIGN.md, "Allowance semantics"). An organization without a current
subscription is on the default plan.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.models import Organization
from routing.models import ModelAlias


class OverLimit(models.TextChoices):
    DENY = "deny", "Deny (429)"
    DEGRADE = "degrade", "Degrade to a cheaper model"


def _positive(verbose_name: str, help_text: str = "") -> models.PositiveIntegerField:
    return models.PositiveIntegerField(verbose_name, validators=[MinValueValidator(1)], help_text=help_text)


class Plan(models.Model):
    slug = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=80)
    is_default = models.BooleanField(
        "default plan", default=False, help_text="Organizations without a subscription are on this plan."
    )
    active = models.BooleanField(default=True, help_text="Inactive plans take no new subscriptions.")

    key_rate_requests = _positive("key rate limit: requests", "Per API key, in any rolling window below.")
    key_rate_window_seconds = _positive("key rate limit: window (seconds)")
    short_requests = _positive("short allowance: requests", "Per organization, in any rolling short window.")
    short_window_seconds = _positive("short allowance: window (seconds)")
    weekly_requests = _positive("weekly allowance: requests", "Per organization, in any rolling long window.")
    weekly_window_seconds = _positive("weekly allowance: window (seconds)")

    all_models = models.BooleanField(default=False, help_text="Entitled to every model alias, present and future.")
    entitled_models = models.ManyToManyField(
        ModelAlias, blank=True, related_name="plans", help_text="The aliases this plan may call, unless all models."
    )
    over_limit = models.CharField(max_length=10, choices=OverLimit.choices, default=OverLimit.DENY)
    degrade_to = models.ForeignKey(
        ModelAlias,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="degrade_plans",
        help_text="With 'degrade', the alias that serves requests over the allowance.",
    )

    price_text = models.CharField(max_length=80, blank=True, default="", help_text='e.g. "Free" or "$20 / month".')
    description = models.TextField(blank=True, default="")
    upgrade_to = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="Offered as the upgrade."
    )
    sort_order = models.IntegerField(default=0)

    class Meta:
        ordering: ClassVar = ["sort_order", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=models.Q(is_default=True),
                name="billing_plan_one_default",
                violation_error_message="Another plan is already the default.",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    key_rate_requests__gte=1,
                    key_rate_window_seconds__gte=1,
                    short_requests__gte=1,
                    short_window_seconds__gte=1,
                    weekly_requests__gte=1,
                    weekly_window_seconds__gte=1,
                ),
                name="billing_plan_limits_positive",
                violation_error_message="Every limit and window must be at least 1.",
            ),
            models.CheckConstraint(
                condition=models.Q(short_window_seconds__lt=models.F("weekly_window_seconds")),
                name="billing_plan_short_window_shorter",
                violation_error_message="The short window must be shorter than the weekly window.",
            ),
            models.CheckConstraint(
                condition=models.Q(over_limit=OverLimit.DEGRADE, degrade_to__isnull=False)
                | models.Q(over_limit=OverLimit.DENY, degrade_to__isnull=True),
                name="billing_plan_degrade_to_iff_degrade",
                violation_error_message="A degrade target is set exactly when the over-limit policy is degrade.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        short, weekly = self.short_window_seconds, self.weekly_window_seconds
        if short and weekly and short >= weekly:
            errors["short_window_seconds"] = "The short window must be shorter than the weekly window."
        if self.short_requests and self.weekly_requests and self.short_requests > self.weekly_requests:
            errors["short_requests"] = "The short allowance cannot exceed the weekly allowance."
        if self.over_limit == OverLimit.DEGRADE and self.degrade_to_id is None:
            errors["degrade_to"] = "Name the model alias that serves requests over the allowance."
        if self.over_limit == OverLimit.DENY and self.degrade_to_id is not None:
            errors["degrade_to"] = "Only plans that degrade have a degrade target; clear it or choose degrade."
        if self.is_default and not self.active:
            errors["active"] = "The default plan must be active."
        if self.upgrade_to_id is not None and self.upgrade_to_id == self.pk:
            errors["upgrade_to"] = "A plan cannot upgrade to itself."
        if errors:
            raise ValidationError(errors)


class Subscription(models.Model):
    """One period of an organization on a plan. The current one has no end; ended rows are the history."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["organization", "-started_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(ended_at__isnull=True),
                name="billing_subscription_one_current",
                violation_error_message="This organization already has a current subscription.",
            ),
            models.CheckConstraint(
                condition=models.Q(ended_at__isnull=True) | models.Q(ended_at__gte=models.F("started_at")),
                name="billing_subscription_ends_after_start",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["plan", "ended_at"], name="billing_sub_plan_current")]

    def __str__(self) -> str:
        return f"{self.organization} on {self.plan}"

    @property
    def is_current(self) -> bool:
        return self.ended_at is None
