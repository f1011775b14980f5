"""Forms of the plan page and of the operators' ledger admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from billing.ledger import MEMO_MAX, MICRO
from billing.models import LedgerEntry, LedgerKind, Plan
from billing.upgrades import NOTE_MAX


class UpgradeRequestForm(forms.Form):
    plan = forms.ModelChoiceField(
        label="Plan",
        queryset=Plan.objects.filter(active=True),
        to_field_name="slug",
        error_messages={
            "invalid_choice": "Choose one of the plans on this page.",
        },
    )
    note = forms.CharField(
        label="Anything we should know? (optional)",
        required=False,
        max_length=NOTE_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class LedgerOperatorEntryForm(forms.ModelForm):
    """The admin's "add ledger entry": a grant or an adjustment, in credits, always with a reason."""

    kind = forms.ChoiceField(
        label="Kind",
        choices=[(LedgerKind.GRANT, "Grant (adds credits)"), (LedgerKind.ADJUSTMENT, "Adjustment (either way)")],
        initial=LedgerKind.GRANT,
    )
    amount = forms.DecimalField(
        label="Amount (credits)",
        max_digits=18,
        decimal_places=6,
        help_text="Up to six decimals. Negative only for an adjustment that takes credits away.",
    )
    memo = forms.CharField(
        label="Reason", max_length=MEMO_MAX, help_text="Shown to the organization in its credit history."
    )

    class Meta:
        model = LedgerEntry
        fields = ("organization", "kind", "memo")

    def validate_constraints(self) -> None:
        """The service fills in the operator and the amount before the database checks the entry's constraints."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        amount: Decimal | None = cleaned.get("amount")
        kind = cleaned.get("kind")
        if amount is not None:
            if kind == LedgerKind.GRANT and amount <= 0:
                self.add_error("amount", "A grant adds credits: enter a positive amount, or choose adjustment.")
            elif amount == 0:
                self.add_error("amount", "An adjustment of zero changes nothing.")
        return cleaned

    @property
    def amount_micro(self) -> int:
        return int(self.cleaned_data["amount"] * MICRO)
