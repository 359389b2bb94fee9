"""Model-level guarantees that other code relies on."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from organizations.models import Organization
from tests.conftest import World


def test_tree_index_reaches_the_database(db: None) -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Organization._meta.db_table)
    assert any(c["columns"] == ["tree_id", "lft"] and c["index"] for c in constraints.values())


def test_database_refuses_duplicate_handle_in_tenant(world: World) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(name="Dup", handle="acme-eu", parent=world.root, tenant=world.root)
