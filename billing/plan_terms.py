"""Plans in plain words for the plan page: "20 requests per minute per key; 200 per 5 hours and 1,000 per week for
the organization", not window sizes in seconds."""

from __future__ import annotations

from dataclasses import dataclass

from billing.models import OverLimit, Plan, UpgradeRequest

_UNITS = (("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def per_duration(seconds: int) -> str:
    """60 -> "per minute", 18000 -> "per 5 hours", 90 -> "per 90 seconds"."""
    for name, size in _UNITS:
        if seconds % size == 0:
            count = seconds // size
            return f"per {name}" if count == 1 else f"per {count:,} {name}s"
    return f"per {seconds:,} seconds"  # unreachable: every whole number of seconds matches "second"


def _requests(count: int) -> str:
    return f"{count:,} request{'s' if count != 1 else ''}"


def plan_limits_sentence(plan: Plan) -> str:
    key_rate = f"{_requests(plan.key_rate_requests)} {per_duration(plan.key_rate_window_seconds)} per key"
    short = f"{plan.short_requests:,} {per_duration(plan.short_window_seconds)}"
    weekly = f"{plan.weekly_requests:,} {per_duration(plan.weekly_window_seconds)}"
    return f"{key_rate}; {short} and {weekly} for the organization"


def plan_models_sentence(plan: Plan) -> str:
    if plan.all_models:
        return "Every model in the catalog."
    names = sorted(alias.alias for alias in plan.entitled_models.all())
    if not names:
        return "No models yet."
    return "Models: " + ", ".join(names) + "."


def plan_over_limit_sentence(plan: Plan) -> str:
    if plan.over_limit == OverLimit.DEGRADE and plan.degrade_to is not None:
        return f"When an allowance is used up, requests are answered by {plan.degrade_to.alias} until it comes back."
    return "When an allowance is used up, requests are refused until it comes back (refused requests do not count)."


@dataclass(frozen=True)
class PlanOffer:
    """One plan as the plan page shows it, with where this organization stands towards it."""

    plan: Plan
    limits: str
    models: str
    over_limit: str
    is_current: bool
    is_suggested: bool  # the current plan's named upgrade
    open_request: UpgradeRequest | None


def plan_offer(
    *, plan: Plan, current: Plan | None = None, open_requests: dict[int, UpgradeRequest] | None = None
) -> PlanOffer:
    return PlanOffer(
        plan=plan,
        limits=plan_limits_sentence(plan),
        models=plan_models_sentence(plan),
        over_limit=plan_over_limit_sentence(plan),
        is_current=current is not None and current.pk == plan.pk,
        is_suggested=current is not None and current.upgrade_to_id == plan.pk,
        open_request=(open_requests or {}).get(plan.pk),
    )
