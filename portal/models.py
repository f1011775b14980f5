"""The invalidation outbox: messages to the gateway workers that must not be lost (portal/outbox.py delivers them)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone


class PendingInvalidation(models.Model):
    """One invalidation not yet delivered. Written in the transaction of the change it announces (a revoked key), so
    it exists exactly when the change does; removed only once Redis has dropped `drop_keys` and the message went out
    on the invalidation channel."""

    topic = models.CharField(max_length=32)
    ident = models.CharField(max_length=200, blank=True)
    drop_keys = models.JSONField(default=list, blank=True, help_text="Redis keys deleted before the message is sent.")
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0, help_text="Deliveries tried and failed so far.")

    class Meta:
        ordering: ClassVar = ["id"]

    def __str__(self) -> str:
        return f"{self.topic}:{self.ident}"
