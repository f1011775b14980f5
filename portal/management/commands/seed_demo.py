"""`manage.py seed_demo`: the demo data the README's run command loads. Idempotent: running it twice changes nothing."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import User

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password-123"  # noqa: S105  (printed for the local demo; never used in production)


class Command(BaseCommand):
    help = "Create the demo user (and, as the apps land, plan, model alias and API key) for a local run."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            user = User.objects.filter(email=DEMO_EMAIL).first()
            if user is None:
                user = User.objects.create_user(DEMO_EMAIL, DEMO_PASSWORD, name="Demo User")
                created = "created"
            else:
                created = "already there"
        self.stdout.write(f"Demo user {user.email} ({created}); password: {DEMO_PASSWORD}")
        self.stdout.write(f"Sandbox router: {os.environ.get('SANDBOX_ROUTER_URL', 'http://127.0.0.1:8100')}")
