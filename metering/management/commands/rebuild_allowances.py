"""`manage.py rebuild_allowances [--organization SLUG]`: rebuild the admission counters from the ledger (after the
fast state was lost). Drains the usage stream first so requests still in it are counted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Organization
from metering.counters import allowance_rebuild, allowance_rebuild_all
from metering.drain import usage_drain


class Command(BaseCommand):
    help = "Rebuild admission counters (allowances and key rate limits) from the usage ledger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", help="only this organization (slug)")
        parser.add_argument("--no-drain", action="store_true", help="do not drain the usage stream first")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_drain"]:
            usage_drain(max_batches=1_000_000)
        if options["organization"]:
            organization = Organization.objects.filter(slug=options["organization"]).first()
            if organization is None:
                raise CommandError(f"no organization {options['organization']!r}")
            counters = allowance_rebuild(organization_id=organization.pk)
            self.stdout.write(f"rebuilt {counters} counters of {organization.slug}")
            return
        self.stdout.write(f"rebuilt the counters of {allowance_rebuild_all()} organizations")
