"""`manage.py catalog`: plans, router pools and model aliases as code (billing/catalog/).

    catalog apply FILE [--prune]   make the database match FILE (YAML or JSON; "-" reads stdin)
    catalog apply --check FILE     print what apply would change; exit 1 if anything would
    catalog export [--json]        print the current catalog in the file format

Exit status: 0 done / nothing to change, 1 changes pending (--check), 2 the file has problems (nothing changed).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from billing.catalog import CatalogError, catalog_apply, catalog_export, load_document


class Command(BaseCommand):
    help = "Apply, check or export the catalog of plans, router pools and model aliases."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        apply = actions.add_parser("apply", help="make the database match a catalog file")
        apply.add_argument("file", help='a YAML or JSON catalog file; "-" reads standard input')
        apply.add_argument("--prune", action="store_true", help="also delete what the file does not declare")
        apply.add_argument("--check", action="store_true", help="only report what would change; exit 1 if any")
        export = actions.add_parser("export", help="print the current catalog")
        export.add_argument("--json", action="store_true", help="JSON instead of YAML")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "export":
            self.stdout.write(catalog_export(json_format=options["json"]), ending="")
            return
        name = options["file"]
        try:
            if name == "-":
                text, source = sys.stdin.read(), "<stdin>"
            else:
                text, source = Path(name).read_text(encoding="utf-8"), name
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {name}: {error}", returncode=2) from None
        json_format = True if source.endswith(".json") else None
        try:
            document = load_document(text, source=source, json_format=json_format)
            changes = catalog_apply(document=document, prune=options["prune"], dry_run=options["check"])
        except CatalogError as error:
            problems = "\n".join(f"  {problem}" for problem in error.problems)
            raise CommandError(f"{source}: nothing was changed; fix these first:\n{problems}", returncode=2) from None
        for line in changes.lines:
            self.stdout.write(line)
        if options["check"]:
            if changes:
                raise CommandError(f"{len(changes.lines)} change(s) would be made", returncode=1)
            self.stdout.write("No changes: the database matches the file.")
        elif changes:
            self.stdout.write(self.style.SUCCESS(f"Applied {len(changes.lines)} change(s)."))
        else:
            self.stdout.write("No changes: the database already matches the file.")
