"""`manage.py revokeapikey ID_OR_DISPLAYED_PREFIX`: revoke a key by id or by what the pages show (prefix…last4)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apikeys.models import ApiKey
from apikeys.services import apikey_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its id or its displayed form (ctx_live_AbCd…wxyz or ctx_live_AbCd)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")

    def handle(self, *args: Any, **options: Any) -> None:
        text = options["key"].strip()
        if text.isdigit():
            keys = list(ApiKey.objects.filter(pk=int(text)))
        else:
            prefix, _, last4 = text.replace("...", "…").partition("…")
            query = ApiKey.objects.filter(prefix=prefix)
            if last4:
                query = query.filter(last4=last4)
            keys = list(query)
        if not keys:
            raise CommandError(f"No key matches {text!r}")
        if len(keys) > 1:
            raise CommandError(f"{len(keys)} keys match {text!r}; give the id or prefix…last4")
        key = apikey_revoke(key=keys[0], actor=None)
        self.stdout.write(f"Revoked {key.masked} (id {key.pk}) of {key.organization.slug}")
