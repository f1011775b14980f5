"""Showing micro-credit amounts as credits: 1500000 -> "1.5", -250 -> "-0.00025", 12000000000 -> "12,000"."""

from __future__ import annotations

from django import template

from billing.ledger import MICRO

register = template.Library()


@register.filter
def credits(micro: int | None) -> str:
    micro = int(micro or 0)
    whole, fraction = divmod(abs(micro), MICRO)
    text = f"{whole:,}"
    if fraction:
        text += "." + f"{fraction:06d}".rstrip("0")
    return f"-{text}" if micro < 0 else text


@register.filter
def signed_credits(micro: int | None) -> str:
    """With a sign either way, for history lines: "+5", "-0.25", "0"."""
    micro = int(micro or 0)
    return f"+{credits(micro)}" if micro > 0 else credits(micro)
