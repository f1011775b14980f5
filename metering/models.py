"""The usage ledger: one row per request id (`UsageEvent`) and its hourly and daily roll-ups (`UsageRollup`).

Rows are written only by metering.ingest (from the gateway's lifecycle events) and metering.reconcile (closing
requests that never completed). Pages and `/api/v1/usage` read roll-ups; the request log reads rows.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from accounts.models import Organization
from apikeys.models import ApiKey
from metering.events import OUTCOMES


class Stage(models.TextChoices):
    """How far a request got. Ordered: a row only ever moves to a later stage (see metering/ledger.py)."""

    REFUSED = "refused", "Refused before admission"
    ACCEPTED = "accepted", "Accepted"
    FORWARDED = "forwarded", "Forwarded to a backend"
    CLOSED = "closed", "Closed by reconciliation (no completion arrived)"
    COMPLETED = "completed", "Completed"


class Outcome(models.TextChoices):
    OK = "ok", "OK"
    CLIENT_ERROR = "client_error", "Client error"
    RATE_LIMITED = "rate_limited", "Rate limited"
    QUOTA_EXHAUSTED = "quota_exhausted", "Quota exhausted"
    ROUTING_ERROR = "routing_error", "Routing error"
    BACKEND_ERROR = "backend_error", "Backend error"
    BACKEND_TIMEOUT = "backend_timeout", "Backend timeout"
    CLIENT_CANCELLED = "client_cancelled", "Cancelled by the client"
    UNKNOWN = "unknown", "Unknown"


assert tuple(Outcome.values) == OUTCOMES, "metering.events.OUTCOMES and Outcome must list the same outcomes"


class UsageEvent(models.Model):
    request_id = models.CharField(max_length=64)  # unique: see Meta (a constraint, so no unused LIKE index)
    # No index of its own: every index below starts with the organization.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    reported_key_id = models.BigIntegerField(default=0, help_text="The key id the gateway reported (kept if deleted).")

    stage = models.CharField(max_length=10, choices=Stage.choices, blank=True, default="")
    model = models.CharField(max_length=80, blank=True, default="", help_text="The alias the client asked for.")
    served_model = models.CharField(max_length=80, blank=True, default="", help_text="The alias that served it.")
    family = models.CharField(max_length=40, blank=True, default="")
    plan = models.CharField(max_length=40, blank=True, default="", help_text="The plan slug at admission.")
    allowance_class = models.CharField(max_length=20, blank=True, default="")
    cost_units = models.PositiveIntegerField(default=0, help_text="Allowance units booked at admission.")
    billed = models.BooleanField(default=False, help_text="Counts against the allowance: admitted and not refunded.")
    refunded = models.BooleanField(default=False)
    admitted_at_ms = models.BigIntegerField(null=True, blank=True, help_text="When the units were booked (ms).")

    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    # db_default too: a drain worker of the release before this column inserts without it during a rolling deploy,
    # and the database must fill it in rather than refuse the row (which would dead-letter good events).
    error_code = models.CharField(
        max_length=40,
        blank=True,
        default="",
        db_default="",
        help_text="The `error.code` the client was sent; empty for a success or a client that hung up.",
    )
    target_id = models.BigIntegerField(null=True, blank=True, help_text="The router target that served it.")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    stream = models.BooleanField(default=False)

    started_at = models.DateTimeField(help_text="When the request arrived (admission or refusal): the log's order.")
    accepted_at = models.DateTimeField(null=True, blank=True)
    forwarded_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When reconciliation closed it as unknown.")
    recorded_at = models.DateTimeField(null=True, blank=True, help_text="When metering first wrote it.")

    class Meta:
        ordering: ClassVar = ["-started_at", "-id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["request_id"], name="metering_ev_request_id_unique"),
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "-started_at"], name="metering_ev_org_time"),
            models.Index(fields=["organization", "api_key", "-started_at"], name="metering_ev_org_key_time"),
            models.Index(fields=["organization", "model", "-started_at"], name="metering_ev_org_model_time"),
            models.Index(fields=["organization", "outcome", "-started_at"], name="metering_ev_org_outcome_time"),
            # Reconciliation's scan for admitted requests that never completed: a small partial index.
            models.Index(
                fields=["started_at"],
                name="metering_ev_open",
                condition=models.Q(stage__in=["accepted", "forwarded"]),
            ),
            models.Index(fields=["started_at"], name="metering_ev_time"),
        ]

    def __str__(self) -> str:
        return self.request_id


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class UsageRollup(models.Model):
    """Totals of one organization's requests for one key and one model alias in one UTC hour or day."""

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+", db_index=False)
    # The reported key id (0: none); not a foreign key, so totals outlive keys.
    key_id = models.BigIntegerField(help_text="The key id the gateway reported (0: none).")
    model = models.CharField(max_length=80, blank=True, default="")

    requests = models.BigIntegerField(default=0, help_text="Every request seen, refused ones included.")
    billed_requests = models.BigIntegerField(default=0, help_text="Admitted and not refunded.")
    cost_units = models.BigIntegerField(default=0, help_text="Allowance units of the billed requests.")
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    outcome_ok = models.BigIntegerField(default=0)
    outcome_client_error = models.BigIntegerField(default=0)
    outcome_rate_limited = models.BigIntegerField(default=0)
    outcome_quota_exhausted = models.BigIntegerField(default=0)
    outcome_routing_error = models.BigIntegerField(default=0)
    outcome_backend_error = models.BigIntegerField(default=0)
    outcome_backend_timeout = models.BigIntegerField(default=0)
    outcome_client_cancelled = models.BigIntegerField(default=0)
    outcome_unknown = models.BigIntegerField(default=0)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["granularity", "bucket_start", "organization", "key_id", "model"],
                name="metering_rollup_unique",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["organization", "granularity", "bucket_start"], name="metering_rollup_org_time"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.granularity} {self.bucket_start:%Y-%m-%d %H:%M} key {self.key_id}"


# The roll-up's counter columns, in one order for the upsert and the rebuild.
OUTCOME_COLUMNS = tuple(f"outcome_{outcome}" for outcome in OUTCOMES)
ROLLUP_COUNTERS = ("requests", "billed_requests", "cost_units", "prompt_tokens", "completion_tokens", *OUTCOME_COLUMNS)
