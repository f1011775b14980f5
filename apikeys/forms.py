from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from apikeys.models import Scope

EXPIRY_CHOICES = [("", "Never"), ("7", "In 7 days"), ("30", "In 30 days"), ("90", "In 90 days"), ("365", "In a year")]
GRACE_CHOICES = [
    ("none", "Stop the old key now"),
    ("1h", "Keep the old key for 1 hour"),
    ("24h", "Keep it for 24 hours"),
]


def parse_labels(text: str) -> dict[str, str]:
    """`env=prod` lines into a dict; the service checks sizes."""
    labels: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise ValidationError(f"Line {number}: write labels as name=value.")
        labels[name.strip()] = value.strip()
    return labels


def parse_models(text: str) -> list[str]:
    return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]


class KeySettingsForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What the key is for, e.g. 'chatbot production'.")
    allowed_models = forms.CharField(
        required=False, help_text="Comma-separated model names; empty allows every model your plan allows."
    )
    rate_limit = forms.IntegerField(
        required=False, min_value=1, help_text="Requests per window for this key, below the plan's; empty: the plan's."
    )
    labels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One name=value per line."
    )

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels") or "")

    def clean_allowed_models(self) -> list[str]:
        return parse_models(self.cleaned_data.get("allowed_models") or "")


class KeyCreateForm(KeySettingsForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, initial=[Scope.INFERENCE], widget=forms.CheckboxSelectMultiple
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False)

    def expires_at(self) -> Any:
        days = self.cleaned_data.get("expires_in")
        return timezone.now() + timedelta(days=int(days)) if days else None


class KeyRotateForm(forms.Form):
    grace = forms.ChoiceField(choices=GRACE_CHOICES, initial="none")
