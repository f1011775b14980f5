"""`manage.py createapikey --email EMAIL [...]`: issue a key from the command line; the secret alone on stdout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Organization, Role, User
from accounts.selectors import member_can_manage
from accounts.services import organization_create, organization_create_personal
from apikeys.errors import ApiKeyError
from apikeys.models import Scope
from apikeys.services import apikey_issue


class Command(BaseCommand):
    help = "Create an API key (and the user and organization if missing). Prints the secret alone on stdout."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--org", help="organization slug (default: the user's personal organization)")
        parser.add_argument("--plan", help="plan slug to subscribe the organization to")
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--scope", action="append", choices=Scope.values, dest="scopes")
        parser.add_argument("--expires-in", type=int, metavar="DAYS")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip().lower()
        if options["expires_in"] is not None and options["expires_in"] < 1:
            raise CommandError("--expires-in must be at least 1 day")
        with transaction.atomic():
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email)
                organization_create_personal(user=user)
            EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
            organization = self._organization(user, options["org"])
            if options["plan"]:
                self._subscribe(organization, options["plan"], user)
            expires_at = timezone.now() + timedelta(days=options["expires_in"]) if options["expires_in"] else None
            scopes = options["scopes"] or [Scope.INFERENCE]
            if Scope.MANAGE in scopes and not member_can_manage(user_id=user.pk, organization_id=organization.pk):
                raise CommandError(
                    f"{email} is not an owner or admin of {organization.slug}, so a manage key of theirs could not "
                    "manage it: name an owner or admin with --email, or leave out --scope manage."
                )
            try:
                issued = apikey_issue(
                    organization=organization,
                    actor=None,  # the audit log's "who": an operator at the command line, not a portal user
                    creator=user,
                    name=options["name"],
                    scopes=scopes,
                    expires_at=expires_at,
                )
            except ApiKeyError as error:
                raise CommandError(str(error)) from None
        self.stderr.write(f"Created key {issued.key.masked} (id {issued.key.pk}) for {organization.slug}")
        self.stdout.write(issued.secret)

    def _organization(self, user: User, slug: str | None) -> Organization:
        if not slug:
            membership = Membership.objects.filter(user=user, organization__personal=True).first()
            if membership is None:
                return organization_create_personal(user=user)
            return membership.organization
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            organization = organization_create(name=slug, owner=user)
            if organization.slug != slug:
                Organization.objects.filter(pk=organization.pk).update(slug=slug)
                organization.refresh_from_db()
        elif not Membership.objects.filter(organization=organization, user=user).exists():
            Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
        return organization

    def _subscribe(self, organization: Organization, plan_slug: str, user: User) -> None:
        from billing.models import Plan
        from billing.services import subscription_change

        plan = Plan.objects.filter(slug=plan_slug).first()
        if plan is None:
            raise CommandError(f"No plan {plan_slug!r}; see `manage.py catalog export`")
        subscription_change(organization=organization, plan=plan, actor=None)
