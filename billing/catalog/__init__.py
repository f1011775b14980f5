"""Catalog as code: plans, router pools and model aliases kept in one file (format: docs/catalog.md).

    catalog_apply(document=load_document(text, source="catalog.yaml"), prune=False, dry_run=False) -> Changes
    catalog_export(json_format=False) -> str

This package owns the file: `file.py` reads and checks it (every problem with its line, or JSON path), `apply.py`
makes the database match it in one transaction, `export.py` prints the database in its format. What each section's
entries mean sits beside its models: billing/catalog_section.py (plans), routing/catalog_section.py (pools, models).
`manage.py catalog` (billing/management/commands/catalog.py) is the command line.
"""

from billing.catalog.apply import Changes, catalog_apply
from billing.catalog.export import catalog_export
from billing.catalog.file import CatalogError, Document, load_document

__all__ = ["CatalogError", "Changes", "Document", "catalog_apply", "catalog_export", "load_document"]
