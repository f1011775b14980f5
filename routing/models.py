"""Router pools, their targets, and the model aliases customers call.

A customer sends `model: gpt-oss-20b`; the alias names a pool; the gateway picks a healthy target in it. Router keys
are never stored: a target names the environment variable that holds its key (`api_key_env`).
"""

from __future__ import annotations

import os
from typing import ClassVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from routing.prompts import DEFAULT_PROMPT_TEMPLATE, template_problem

ENV_NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
ALIAS_RE = r"^[a-z0-9][a-z0-9._:-]*$"

env_name_validator = RegexValidator(ENV_NAME_RE, "An environment variable name: letters, digits and _.")
alias_validator = RegexValidator(ALIAS_RE, "Lower-case letters, digits, and . _ : - (starting with a letter or digit).")


class Protocol(models.TextChoices):
    CORTENSOR = "cortensor", "Cortensor router"
    OPENAI = "openai", "OpenAI-compatible"


class HealthStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not probed yet"
    HEALTHY = "healthy", "Healthy"
    UNHEALTHY = "unhealthy", "Unhealthy"


def base_url_problem(url: str) -> str | None:
    """Why a target base URL cannot be used, or None. Credentials in the URL are refused: keys live in env vars."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials; name the key's environment variable in api_key_env instead"
    if parts.query or parts.fragment:
        return "must not have a query string or fragment"
    return None


class RouterPool(models.Model):
    """A group of interchangeable targets serving the same model(s)."""

    slug = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=100, blank=True, default="")
    enabled = models.BooleanField(default=True, help_text="A disabled pool serves nothing (503 no_healthy_backend).")

    class Meta:
        ordering: ClassVar = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class RouterTarget(models.Model):
    """One upstream endpoint: a Cortensor router node (in a session) or an OpenAI-compatible server."""

    pool = models.ForeignKey(RouterPool, on_delete=models.CASCADE, related_name="targets")
    name = models.CharField(max_length=60)
    base_url = models.CharField(
        max_length=300, help_text="e.g. http://10.0.0.5:8100 (cortensor) or http://10.0.0.6:8000/v1 (openai)."
    )
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.CORTENSOR)
    session_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The Cortensor session requests run in (cortensor targets only)."
    )
    api_key_env = models.CharField(
        "router key variable",
        max_length=100,
        blank=True,
        default="",
        validators=[env_name_validator],
        help_text="NAME of the environment variable holding the router key (never the key itself).",
    )
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    enabled = models.BooleanField(default=True)
    draining = models.BooleanField(default=False, help_text="Finishes what it has, gets no new requests.")

    health_status = models.CharField(max_length=10, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN)
    latency_ms = models.FloatField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    last_probed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["pool", "id"]
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["pool", "name"], name="routing_target_name_unique_in_pool"),
            models.CheckConstraint(
                condition=~models.Q(protocol=Protocol.CORTENSOR) | models.Q(session_id__isnull=False),
                name="routing_target_cortensor_has_session",
                violation_error_message="A cortensor target needs a session id.",
            ),
            models.CheckConstraint(condition=models.Q(weight__gte=1), name="routing_target_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.pool.slug}/{self.name}" if self.pool_id else self.name

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        problem = base_url_problem(self.base_url or "")
        if problem:
            errors["base_url"] = f"The base URL {problem}."
        if self.protocol == Protocol.CORTENSOR:
            if self.session_id is None:
                errors["session_id"] = "A cortensor target needs a session id."
            if not self.api_key_env:
                errors["api_key_env"] = "A cortensor target needs the name of its router key variable."
        elif self.session_id is not None:
            errors["session_id"] = "Only cortensor targets have a session id."
        if errors:
            raise ValidationError(errors)

    @property
    def key_is_set(self) -> bool:
        """Whether this process's environment holds a non-empty value for api_key_env (the value is never shown)."""
        return bool(self.api_key_env and os.environ.get(self.api_key_env))


class ModelAlias(models.Model):
    """The product-facing model name clients send as `model`, and where it is served."""

    alias = models.CharField(max_length=80, unique=True, validators=[alias_validator])
    pool = models.ForeignKey(RouterPool, on_delete=models.PROTECT, related_name="aliases")
    family = models.CharField(max_length=40, blank=True, default="", help_text="e.g. oss, gemma, qwen.")
    weight = models.PositiveIntegerField(
        default=1, validators=[MinValueValidator(1)], help_text="Allowance units one request costs."
    )
    upstream_model = models.CharField(
        max_length=120, blank=True, default="", help_text="Name sent upstream (openai protocol); blank = the alias."
    )
    prompt_template = models.TextField(
        default=DEFAULT_PROMPT_TEMPLATE,
        help_text="How chat messages become one prompt for cortensor targets: one message with {role} and {content}.",
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=300, blank=True, default="", help_text="Shown in the model list.")

    class Meta:
        ordering: ClassVar = ["alias"]
        verbose_name = "model alias"
        verbose_name_plural = "model aliases"
        constraints: ClassVar = [
            models.CheckConstraint(condition=models.Q(weight__gte=1), name="routing_alias_weight_positive"),
        ]

    def __str__(self) -> str:
        return self.alias

    def clean(self) -> None:
        super().clean()
        problem = template_problem(self.prompt_template or "")
        if problem:
            raise ValidationError({"prompt_template": f"The prompt template {problem}."})

    @property
    def upstream_name(self) -> str:
        return self.upstream_model or self.alias
