"""`manage.py reconcile [--since ISO | --hours N]`: close stale requests, report the period, correct drift."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from metering import conf
from metering.reconcile import usage_reconcile


class Command(BaseCommand):
    help = (
        "Reconcile usage: close requests that never completed as unknown, count accepted / forwarded / completed / "
        "recorded requests of the period, list inconsistent ones, and correct admission counter drift."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        period = parser.add_mutually_exclusive_group()
        period.add_argument("--since", help="start of the period, ISO 8601 (UTC when no offset is given)")
        period.add_argument("--hours", type=int, help="the last N hours (default: METERING_RECONCILE_HOURS)")
        parser.add_argument("--no-drain", action="store_true", help="do not drain the usage stream first")
        parser.add_argument("--report-only", action="store_true", help="report drift without correcting it")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["since"]:
            since = parse_datetime(options["since"])
            if since is None:
                raise CommandError("--since must be an ISO 8601 date and time, e.g. 2025-01-31T00:00:00Z")
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
        else:
            hours = options["hours"] if options["hours"] is not None else conf.reconcile_hours()
            if hours < 1:
                raise CommandError("--hours must be at least 1")
            since = now - timedelta(hours=hours)
        report = usage_reconcile(
            since=since, until=now, drain_first=not options["no_drain"], correct=not options["report_only"], now=now
        )
        for line in report.lines():
            self.stdout.write(line)
