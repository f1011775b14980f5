"""`manage.py seed_demo`: the demo data the README's run command loads — a free plan and a `gpt-oss-20b` alias
routed to the sandbox router (portal/demo_catalog.yaml), a demo user and organization, and a fresh demo API key.

Idempotent: running it again changes nothing but the demo key, which is replaced (secrets are never stored, so the
only way to print one is to make a new one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, User
from accounts.services import organization_create_personal
from apikeys.models import ApiKey, KeyStatus
from apikeys.services import apikey_issue, apikey_revoke
from billing.catalog import catalog_apply, load_document

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105  (printed for the local demo; never used in production)
DEMO_KEY_NAME = "demo key"
CATALOG = Path(__file__).resolve().parents[2] / "demo_catalog.yaml"


class Command(BaseCommand):
    help = "Load the local demo: plan, sandbox-routed model alias, demo user and organization, a demo API key."

    def handle(self, *args: Any, **options: Any) -> None:
        sandbox = os.environ.get("SANDBOX_ROUTER_URL", "http://127.0.0.1:8100")
        text = CATALOG.read_text().replace("${SANDBOX_ROUTER_URL}", sandbox)
        with transaction.atomic():
            catalog_apply(document=load_document(text, source=str(CATALOG)))
            user = User.objects.filter(email=DEMO_EMAIL).first()
            if user is None:
                user = User.objects.create_user(DEMO_EMAIL, DEMO_PASSWORD, name="Demo User")
                organization_create_personal(user=user)
            EmailAddress.objects.update_or_create(
                user=user, email=DEMO_EMAIL, defaults={"verified": True, "primary": True}
            )
            membership = Membership.objects.select_related("organization").get(user=user, organization__personal=True)
            for old in ApiKey.objects.filter(
                organization=membership.organization, name=DEMO_KEY_NAME, status=KeyStatus.ACTIVE
            ):
                apikey_revoke(key=old, actor=None)
            issued = apikey_issue(organization=membership.organization, actor=user, name=DEMO_KEY_NAME)
        self.stdout.write(f"Demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
        self.stdout.write(f"Demo organization: {membership.organization.name}; model gpt-oss-20b via {sandbox}")
        self.stdout.write(f"Demo API key (shown once): {issued.secret}")
