"""The plan a new organization starts on, and the move off the wallet-only plan once its owner proves an email.

Organizations without a subscription are on the default plan. A wallet costs nothing to make, so with
SIWE_WALLET_ONLY_PLAN set an organization whose owner has a wallet and no verified email address starts on that
(smaller) plan instead, and moves to the default plan when the owner verifies an address. Both moves are ordinary
subscription changes (billing.services.subscription_change): audited, in the history, announced to the gateway.
"""

from __future__ import annotations

import logging

from django.conf import settings

from accounts.errors import SignUpUnavailable
from accounts.models import Membership, Organization, Role, User
from accounts.selectors import user_is_wallet_only
from billing.models import Plan, Subscription
from billing.selectors import NoDefaultPlan, plan_default
from billing.services import subscription_change

logger = logging.getLogger(__name__)


class StartingPlanUnavailable(Exception):
    """SIWE_WALLET_ONLY_PLAN names no active plan. Wallet-only accounts are refused rather than given the default
    plan's allowance the setting exists to withhold."""


def wallet_only_plan() -> Plan | None:
    """The plan SIWE_WALLET_ONLY_PLAN names, or None when it is unset."""
    slug: str | None = settings.SIWE_WALLET_ONLY_PLAN
    if not slug:
        return None
    plan = Plan.objects.filter(slug=slug, active=True).first()
    if plan is None:
        logger.error("SIWE_WALLET_ONLY_PLAN names %r, which is not an active plan: wallet sign-ups are refused", slug)
        raise StartingPlanUnavailable(f"SIWE_WALLET_ONLY_PLAN names {slug!r}, which is not an active plan")
    return plan


def subscription_start(*, organization: Organization, owner: User, ip: str | None = None) -> Subscription | None:
    """Put a new organization of a wallet-only owner on the wallet-only plan. None (nothing recorded: the default
    plan applies) for everyone else, or when the setting is unset."""
    if not user_is_wallet_only(user=owner):
        return None
    plan = wallet_only_plan()
    if plan is None:
        return None
    return subscription_change(organization=organization, plan=plan, actor=owner, ip=ip)


def subscriptions_leave_wallet_only_plan(*, user: User, ip: str | None = None) -> list[Subscription]:
    """After `user` verified an email address: each organization they own that is still on the wallet-only plan
    moves to the default plan. Organizations an operator moved elsewhere meanwhile stay where they are."""
    slug: str | None = settings.SIWE_WALLET_ONLY_PLAN
    if not slug:
        return []
    owned = Membership.objects.filter(user=user, role=Role.OWNER).values("organization_id")
    current = Subscription.objects.filter(
        organization_id__in=owned, ended_at__isnull=True, plan__slug=slug
    ).select_related("organization")
    if not current:
        return []
    try:
        default = plan_default()
    except NoDefaultPlan:
        logger.error("no default plan: %s stays on the wallet-only plan %r after verifying an email", user.pk, slug)
        return []
    return [subscription_change(organization=s.organization, plan=default, actor=user, ip=ip) for s in current]


class StartingPlanHandler:
    """Registered with accounts.hooks by BillingConfig.ready()."""

    def organization_created(self, *, organization: Organization, owner: User, ip: str | None) -> None:
        try:
            subscription_start(organization=organization, owner=owner, ip=ip)
        except StartingPlanUnavailable:
            raise SignUpUnavailable(
                "Accounts without a verified email address cannot get a new organization right now; "
                "add and verify an email address, or try again later."
            ) from None

    def email_verified(self, *, user: User, ip: str | None) -> None:
        subscriptions_leave_wallet_only_plan(user=user, ip=ip)


HANDLER = StartingPlanHandler()
