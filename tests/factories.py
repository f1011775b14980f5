"""factory-boy factories and the builders around them: the one place tests make model rows.

One section per app, in the order the apps layer (accounts, routing, billing, metering). Lifecycle events, which
are messages rather than rows, are built in tests/metering/events.py.
"""

from __future__ import annotations

from datetime import datetime

import factory
from django.db.models import F

from accounts.models import Membership, Organization, Role, User
from billing.models import LedgerEntry, LedgerKind, Plan, Subscription, UpgradeRequest
from metering.models import Granularity, UsageRollup
from metering.rollups import bucket_start
from routing.models import ModelAlias, Protocol, RouterPool, RouterTarget

TEST_PASSWORD = "correct-horse-battery-42"


# accounts


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(TEST_PASSWORD)


class OperatorFactory(UserFactory):
    """A superuser: the operator who runs the admin, grants credits and edits plans."""

    email = "ops@example.com"
    name = "Oscar Operator"
    is_staff = True
    is_superuser = True


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def verified(user: User) -> User:
    """Mark the user's email verified, as clicking the emailed link does."""
    from allauth.account.models import EmailAddress

    EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})
    return user


# apikeys


def issue_key(organization: Organization, actor: User | None = None, **options: object) -> tuple[object, str]:
    """A key of `organization` made through the service, as every entry point does: (ApiKey, secret)."""
    from apikeys.services import apikey_issue

    options.setdefault("name", "test key")
    issued = apikey_issue(organization=organization, actor=actor, **options)  # type: ignore[arg-type]
    return issued.key, issued.secret


# routing


class RouterPoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RouterPool

    slug = factory.Sequence(lambda n: f"pool-{n}")
    name = factory.Sequence(lambda n: f"Pool {n}")


class RouterTargetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RouterTarget

    pool = factory.SubFactory(RouterPoolFactory)
    name = factory.Sequence(lambda n: f"router-{n}")
    base_url = factory.Sequence(lambda n: f"http://10.0.0.{n % 250 + 1}:8100")
    protocol = Protocol.CORTENSOR
    session_id = 7
    api_key_env = "TEST_ROUTER_KEY"
    weight = 1


class ModelAliasFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelAlias

    alias = factory.Sequence(lambda n: f"model-{n}")
    pool = factory.SubFactory(RouterPoolFactory)
    family = "oss"


# billing


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Sequence(lambda n: f"Plan {n}")
    key_rate_requests = 20
    key_rate_window_seconds = 60
    short_requests = 200
    short_window_seconds = 18_000
    weekly_requests = 1000
    weekly_window_seconds = 604_800
    all_models = True

    @factory.post_generation
    def models(self, create: bool, aliases: list[object] | None, **kwargs: object) -> None:
        if create and aliases:
            self.all_models = False
            self.save(update_fields=["all_models"])
            self.entitled_models.set(aliases)


class DefaultPlanFactory(PlanFactory):
    """The plan every organization without a subscription is on, under the slug the demo catalog gives it."""

    slug = "free"
    name = "Free"
    is_default = True


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    organization = factory.SubFactory(OrganizationFactory)
    plan = factory.SubFactory(PlanFactory)


class UpgradeRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UpgradeRequest

    organization = factory.SubFactory(OrganizationFactory)
    to_plan = factory.SubFactory(PlanFactory)


class OperatorEntryFactory(factory.django.DjangoModelFactory):
    """A grant (or, with kind and a signed amount, an adjustment) made at a chosen moment: services stamp "now", and
    statements need entries in past months. Inserting is all the append-only ledger allows, so this is a real row."""

    class Meta:
        model = LedgerEntry

    organization = factory.SubFactory(OrganizationFactory)
    kind = LedgerKind.GRANT
    amount_micro = 1_000_000
    memo = "Test grant"
    created_by = factory.SubFactory(UserFactory)


# metering


def usage_rollups_add(
    *,
    organization: Organization,
    at: datetime,
    model: str = "chat-small",
    key_id: int = 0,
    requests: int = 1,
    billed_requests: int | None = None,
    cost_units: int | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> None:
    """Add usage to the hourly and daily roll-ups around `at`, as metering's ingestion does: the same totals land in
    the hour and in the day. Counted requests and units default to the requests (every request let through, weight 1).
    """
    billed = requests if billed_requests is None else billed_requests
    units = billed if cost_units is None else cost_units
    for granularity in (Granularity.HOUR, Granularity.DAY):
        row, _ = UsageRollup.objects.get_or_create(
            granularity=granularity,
            bucket_start=bucket_start(at, granularity),
            organization=organization,
            key_id=key_id,
            model=model,
        )
        UsageRollup.objects.filter(pk=row.pk).update(
            requests=F("requests") + requests,
            billed_requests=F("billed_requests") + billed,
            cost_units=F("cost_units") + units,
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            outcome_ok=F("outcome_ok") + billed,
        )
