"""Reading and writing ledger rows and roll-ups in bulk: one SQL statement per step of a batch.

Ingestion writes hundreds of rows per batch. Model instances and the ORM's bulk upsert cost more per row than the
database's own work, and so does binding thousands of parameters into one statement's text, so:
- on PostgreSQL, rows are copied (binary COPY) into a session-private staging table, then moved with one
  `INSERT ... SELECT ... ON CONFLICT`; measured against one array parameter per column (unnest), COPY halves the
  cost of a 900-row batch (docs/metering.md);
- elsewhere (SQLite, the embedded demo) as a multi-row VALUES list, which PostgreSQL also accepts (the tests run
  both forms there).
Both use INSERT ... ON CONFLICT, which the two databases spell the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model

from metering.ledger import COLUMNS, WRITABLE_FIELDS, LedgerRow
from metering.models import UsageEvent

_CHUNK = 500  # rows per VALUES statement: 29 columns stays under SQLite's bound-parameter limit (32,766)

# Switched off by tests to run the portable form on PostgreSQL too.
use_copy = True


def rows_insert_new(rows: Sequence[LedgerRow]) -> set[str]:
    """Insert the rows whose request id the ledger does not hold yet; returns the request ids inserted. A row that
    another transaction is inserting at the same moment waits for it and then counts as already there."""
    tail = f"ON CONFLICT ({_quote('request_id')}) DO NOTHING RETURNING {_quote('request_id')}"
    return {request_id for (request_id,) in bulk_insert(UsageEvent, COLUMNS, _tuples(rows), tail)}


def rows_update(rows: Sequence[LedgerRow]) -> None:
    """Write rows that exist (and that this transaction has locked) back, every writable column."""
    updates = ", ".join(f"{_quote(name)} = excluded.{_quote(name)}" for name in WRITABLE_FIELDS)
    bulk_insert(UsageEvent, COLUMNS, _tuples(rows), f"ON CONFLICT ({_quote('request_id')}) DO UPDATE SET {updates}")


def rows_lock(request_ids: Sequence[str], *, skip_locked: bool = False) -> list[LedgerRow]:
    """The rows of these request ids, locked until the transaction ends, in request-id order (so two transactions
    lock shared rows in the same order and cannot deadlock)."""
    if not request_ids:
        return []
    if _copying():
        columns = ", ".join(_quote(name) for name in COLUMNS)
        sql = (
            f"SELECT {columns} FROM {_quote(UsageEvent._meta.db_table)} WHERE {_quote('request_id')} = ANY(%s) "  # noqa: S608
            f"ORDER BY {_quote('request_id')} FOR UPDATE{' SKIP LOCKED' if skip_locked else ''}"
        )
        with _server_cursor() as cursor:
            cursor.execute(sql, [list(request_ids)], prepare=False)
            return [LedgerRow(*values) for values in cursor.fetchall()]
    found = (
        UsageEvent.objects.select_for_update(skip_locked=skip_locked)
        .filter(request_id__in=request_ids)
        .order_by("request_id")
        .values_list(*COLUMNS)
    )
    return [LedgerRow(*values) for values in found]


def bulk_insert(
    model: type[Model], columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
) -> list[tuple[Any, ...]]:
    """INSERT rows (tuples in `columns` order) into `model`'s table, followed by `tail` (ON CONFLICT ..., maybe
    RETURNING); returns the rows RETURNING gave back."""
    if not rows:
        return []
    fields = {field.attname: field for field in model._meta.concrete_fields}
    table = _quote(model._meta.db_table)
    names = ", ".join(_quote(name) for name in columns)
    returning = "RETURNING" in tail
    if _copying():
        types = [_copy_type(fields[name]) for name in columns]
        with _server_cursor() as cursor:
            staging = _staging_table(cursor, model, columns)
            with cursor.copy(f"COPY {staging} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            sql = f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} {tail}"  # noqa: S608
            cursor.execute(sql, prepare=False)
            return list(cursor.fetchall()) if returning else []
    adapt = connection.ops.adapt_datetimefield_value
    datetimes = [fields[name].get_internal_type() == "DateTimeField" for name in columns]
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    found: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            params = [
                adapt(value) if is_datetime and value is not None else value
                for row in chunk
                for value, is_datetime in zip(row, datetimes, strict=True)
            ]
            values = ", ".join([one] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({names}) VALUES {values} {tail}", params)  # noqa: S608
            if returning:
                found += cursor.fetchall()
    return found


def _tuples(rows: Sequence[LedgerRow]) -> list[tuple[Any, ...]]:
    return [tuple(getattr(row, name) for name in COLUMNS) for row in rows]


def _copying() -> bool:
    return use_copy and connection.vendor == "postgresql"


def _staging_table(cursor: Any, model: type[Model], columns: Sequence[str]) -> str:
    """This session's staging table for `model`, created if missing and emptied: same column types, no
    constraints. One round trip (0.2 ms when it exists); tracking its existence instead would go wrong whenever the
    transaction that created it rolls back."""
    name = _quote(f"{model._meta.db_table}_incoming")
    names = ", ".join(_quote(column) for column in columns)
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "  # noqa: S608
        f"SELECT {names} FROM {_quote(model._meta.db_table)} WITH NO DATA; DELETE FROM {name}",
        prepare=False,
    )
    return name


def _copy_type(field: Field[Any, Any]) -> str:
    """The type name binary COPY encodes a column's values as."""
    return str(field.db_type(connection)).split("(")[0]


def _server_cursor() -> Any:
    """A cursor on Django's own connection (so inside its transaction) that binds parameters on the server. Its
    statements are never prepared (prepare=False), as Django's own are not: a prepared statement outlives the
    transaction and breaks behind a transaction-pooling proxy. (It bypasses Django's query logging.)"""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _quote(name: str) -> str:
    return str(connection.ops.quote_name(name))
