"""Plans (what an organization may do) and subscriptions (which plan an organization is on, with history).

A plan holds exactly the limits the specs ask for and no more: a per-key rate limit, and two rolling organization
allowances, a short window and a weekly one (docs/architecture.md, "Allowances"). An organization without a current
subscription is on the default plan.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models.functions import Coalesce
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
    unit_price_micro = models.PositiveBigIntegerField(
        "price per allowance unit (micro-credits)",
        default=0,
        help_text="Charged in the ledger for each allowance unit used; 0 for free plans. 1 credit = 1,000,000.",
    )

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


class LedgerKind(models.TextChoices):
    GRANT = "grant", "Credit grant"
    USAGE = "usage", "Usage"
    ADJUSTMENT = "adjustment", "Adjustment"
    TOP_UP = "top_up", "Top-up"


class LedgerEntryQuerySet(models.QuerySet["LedgerEntry"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Ledger entries are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Ledger entries are append-only")


def ledger_dated_at() -> Coalesce:
    """The moment an entry counts for (annotate it as `dated_at`): a usage entry the start of the period it charges,
    so the last day of a month lands in that month though it is recorded the next morning; any other entry the moment
    it was made."""
    return Coalesce("period_start", "created_at")


def _only(kind: LedgerKind, condition: models.Q) -> models.Q:
    """`condition` must hold for every entry of `kind` (other kinds pass)."""
    return ~models.Q(kind=kind) | condition


_NO_PERIOD = models.Q(period_start__isnull=True, period_end__isnull=True, cost_units__isnull=True)


class LedgerEntry(models.Model):
    """One movement of an organization's credits, in integer micro-units of a credit (1 credit = 1,000,000).

    Append-only: a mistake is corrected by an adjustment, never by editing (the queryset and the instance refuse,
    and on PostgreSQL a trigger refuses UPDATE and DELETE). The balance is always the sum of the entries. Each entry
    names exactly one source: a usage period (usage), the operator who made it (grant, adjustment) or a payment
    reference (top-up).
    """

    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,  # an organization with billing history is kept, not deleted
        related_name="ledger_entries",
        db_index=False,  # the (organization, created_at) index serves it
    )
    kind = models.CharField(max_length=12, choices=LedgerKind.choices)
    amount_micro = models.BigIntegerField(
        "amount (micro-credits)", help_text="Positive adds credits, negative spends them. 1 credit = 1,000,000."
    )
    created_at = models.DateTimeField(default=timezone.now)
    memo = models.CharField(max_length=200, blank=True, default="")

    # Source: a usage period ...
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    cost_units = models.BigIntegerField(null=True, blank=True, help_text="Allowance units the usage entry priced.")
    # ... or the operator who made it (kept: an operator with entries cannot be deleted, only deactivated) ...
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # ... or a payment.
    payment_ref = models.CharField(max_length=200, blank=True, default="")

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.CheckConstraint(
                condition=_only(
                    LedgerKind.USAGE,
                    models.Q(
                        period_start__isnull=False,
                        period_end__gt=models.F("period_start"),
                        cost_units__gte=0,
                        amount_micro__lte=0,
                        created_by__isnull=True,
                        payment_ref="",
                    ),
                ),
                name="billing_ledger_usage_source",
                violation_error_message="A usage entry names its period and units, and spends (or is zero).",
            ),
            models.CheckConstraint(
                condition=_only(
                    LedgerKind.GRANT,
                    _NO_PERIOD & models.Q(created_by__isnull=False, payment_ref="", amount_micro__gt=0),
                ),
                name="billing_ledger_grant_source",
                violation_error_message="A grant names the operator who made it and adds credits.",
            ),
            models.CheckConstraint(
                condition=_only(
                    LedgerKind.ADJUSTMENT,
                    _NO_PERIOD & models.Q(created_by__isnull=False, payment_ref="") & ~models.Q(amount_micro=0),
                ),
                name="billing_ledger_adjustment_source",
                violation_error_message="An adjustment names the operator who made it and is not zero.",
            ),
            models.CheckConstraint(
                condition=_only(
                    LedgerKind.TOP_UP,
                    _NO_PERIOD & models.Q(created_by__isnull=True, amount_micro__gt=0) & ~models.Q(payment_ref=""),
                ),
                name="billing_ledger_top_up_source",
                violation_error_message="A top-up names its payment and adds credits.",
            ),
            models.CheckConstraint(condition=models.Q(kind__in=LedgerKind.values), name="billing_ledger_kind_known"),
            # A usage period is charged once: no two usage entries of one organization start (or end) together.
            # The service also refuses overlapping periods.
            models.UniqueConstraint(
                fields=["organization", "period_start"],
                condition=models.Q(kind=LedgerKind.USAGE),
                name="billing_ledger_usage_period_once",
                violation_error_message="This usage period is already in the ledger.",
            ),
            models.UniqueConstraint(
                fields=["organization", "period_end"],
                condition=models.Q(kind=LedgerKind.USAGE),
                name="billing_ledger_usage_period_end_once",
            ),
            models.UniqueConstraint(
                fields=["payment_ref"],
                condition=models.Q(kind=LedgerKind.TOP_UP),
                name="billing_ledger_payment_once",
                violation_error_message="This payment is already in the ledger.",
            ),
        ]
        indexes: ClassVar = [models.Index(fields=["organization", "created_at"], name="billing_ledger_org_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_micro:+,} µ for {self.organization_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Ledger entries are append-only")


class UpgradeStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class UpgradeRequest(models.Model):
    """An owner's wish to move to another plan. Payment comes later: for now an operator follows up and closes it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="upgrade_requests")
    from_plan = models.ForeignKey(Plan, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # A plan nobody was ever on may be deleted; the intents to it go with it (their audit events stay).
    to_plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="upgrade_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    note = models.TextField(blank=True, default="")
    status = models.CharField(max_length=10, choices=UpgradeStatus.choices, default=UpgradeStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering: ClassVar = ["-created_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization", "to_plan"],
                condition=models.Q(status=UpgradeStatus.OPEN),
                name="billing_upgrade_one_open_per_plan",
                violation_error_message="This organization has already asked for this plan.",
            ),
            models.CheckConstraint(
                condition=models.Q(status=UpgradeStatus.OPEN, closed_at__isnull=True)
                | models.Q(status=UpgradeStatus.CLOSED, closed_at__isnull=False),
                name="billing_upgrade_closed_at_iff_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization} asks for {self.to_plan}"
