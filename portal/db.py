"""Database helpers shared by migrations."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def append_only(table: str, nullable_on_delete: tuple[str, ...] = ()) -> migrations.RunPython:
    """A PostgreSQL trigger that refuses UPDATE and DELETE on `table`.

    The one update allowed is a listed foreign-key column becoming NULL (ON DELETE SET NULL of the row it points
    at), so deleting a user does not require rewriting history. Other databases (SQLite in the embedded demo) rely on
    the model's own refusal.
    """
    function = f"{table}_append_only"
    allowed = ", ".join(f"'{column}'" for column in nullable_on_delete) or "NULL"
    # Table and column names come from migrations, never from input.
    forward_sql = f"""
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
        DECLARE
            key text;
        BEGIN
            IF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION '% is append-only: rows cannot be deleted', TG_TABLE_NAME;
            END IF;
            FOR key IN SELECT jsonb_object_keys(to_jsonb(NEW)) LOOP
                IF (to_jsonb(NEW) -> key) IS DISTINCT FROM (to_jsonb(OLD) -> key) THEN
                    IF NOT (key = ANY (ARRAY[{allowed}]::text[]) AND (to_jsonb(NEW) -> key) = 'null'::jsonb) THEN
                        RAISE EXCEPTION '% is append-only: column % cannot change', TG_TABLE_NAME, key;
                    END IF;
                END IF;
            END LOOP;
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER {function} BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION {function}();
    """  # noqa: S608
    backward_sql = f"DROP TRIGGER IF EXISTS {function} ON {table}; DROP FUNCTION IF EXISTS {function}();"

    def forward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(forward_sql, params=None)

    def backward(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(backward_sql, params=None)

    return migrations.RunPython(forward, backward)
