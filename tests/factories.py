"""factory-boy factories, the one place tests make objects."""

from __future__ import annotations

import factory

from accounts.models import Membership, Organization, Role, User

TEST_PASSWORD = "correct-horse-battery-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(TEST_PASSWORD)


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


def issue_key(organization: Organization, actor: User | None = None, **options: object) -> tuple[object, str]:
    """A key of `organization` made through the service, as every entry point does: (ApiKey, secret)."""
    from apikeys.services import apikey_issue

    options.setdefault("name", "test key")
    issued = apikey_issue(organization=organization, actor=actor, **options)  # type: ignore[arg-type]
    return issued.key, issued.secret
