"""System checks of the deployment actas relies on."""

from __future__ import annotations

import json
from typing import Any

from django.core.checks import Error, register
from django.db import connections

# Collations that order text by code point: the order the Console's user pages merge and
# continue from (identity.selectors.users.org_member_page).
CODE_POINT_COLLATIONS = {"C", "POSIX", "C.UTF-8", "C.utf8", "ucs_basic"}


@register("database")
def check_username_collation(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Error]:
    """PostgreSQL must compare usernames by code point. The Console's user pages are keyset
    pages whose rows are merged in Python; under a linguistic collation (``en_US.utf8``) the
    database and Python disagree on the order of ``a_b`` and ``a.c``, and a page could skip a
    user. Run by ``migrate`` and ``check --database default``."""
    errors: list[Error] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            # The database's own collation (libc, or ICU from PostgreSQL 15), unless the
            # username column has one of its own.
            cursor.execute(
                "SELECT row_to_json(d)::text FROM pg_database d WHERE d.datname = current_database()"
            )
            database = json.loads(cursor.fetchone()[0])
            cursor.execute(
                "SELECT c.collname FROM pg_attribute t JOIN pg_collation c ON c.oid = t.attcollation "
                "WHERE t.attrelid = to_regclass('identity_user') AND t.attname = 'username' "
                "AND c.collname <> 'default'"
            )
            column = cursor.fetchone()
        if column:
            collation = column[0]
        elif database.get("datlocprovider") == "i":
            collation = database.get("daticulocale") or database.get("datlocale") or "icu"
        else:
            collation = database.get("datcollate", "")
        if collation not in CODE_POINT_COLLATIONS:
            errors.append(
                Error(
                    f"The database {alias!r} orders text with the collation {collation!r}; actas needs "
                    "code-point order (C or C.UTF-8).",
                    hint="Create the database with: createdb --locale=C.UTF-8 --template=template0 <name>",
                    id="actas.E001",
                )
            )
    return errors
