"""Prefix-search indexes for the Console's user search (PostgreSQL only).

The search is ``istartswith`` on the username, email, given and family name, which Django
writes as ``UPPER(col::text) LIKE UPPER('abc%')``. A btree over exactly that expression with
``text_pattern_ops`` serves the prefix whatever the database collation; the four are
combined by a bitmap OR. SQLite has no such index (its LIKE is case-insensitive and its
tables are small where it is used): there the migration does nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations

COLUMNS = ("username", "email", "given_name", "family_name")


def _name(column: str) -> str:
    return f"user_{column}_prefix_idx"


def forwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{_name(column)}" ON "identity_user" '
            f'(UPPER("{column}"::text) text_pattern_ops)'
        )


def backwards(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{_name(column)}"')


class Migration(migrations.Migration):
    dependencies = [("identity", "0007_audit_purge")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
