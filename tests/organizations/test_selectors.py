"""Tree reads."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from organizations.models import Organization
from organizations.selectors import (
    org_ancestor_ids,
    org_ancestors,
    org_children,
    org_descendant_filter,
    org_descendants,
    org_get_in_tenant,
    org_is_descendant,
    org_is_usable,
    tenant_get,
)
from organizations.services import org_insert, org_set_status
from tests.conftest import World


def test_ancestors_root_first(world: World) -> None:
    assert [o.handle for o in org_ancestors(world.sales)] == ["acme", "acme-eu", "acme-eu-sales"]
    assert org_ancestor_ids(world.sales, include_self=False) == [world.root.pk, world.eu.pk]


def test_descendants_and_filter_agree(world: World) -> None:
    subtree = set(org_descendants(world.eu, include_self=True).values_list("handle", flat=True))
    assert subtree == {"acme-eu", "acme-eu-sales"}
    filtered = set(
        Organization.objects.filter(
            **org_descendant_filter(world.eu, prefix="", include_self=False)
        ).values_list("handle", flat=True)
    )
    assert filtered == {"acme-eu-sales"}


def test_is_descendant(world: World) -> None:
    assert org_is_descendant(world.sales, of=world.root)
    assert not org_is_descendant(world.us, of=world.eu)
    assert not org_is_descendant(world.eu, of=world.eu)
    assert org_is_descendant(world.eu, of=world.eu, include_self=True)


def test_children_sorted_by_name(world: World) -> None:
    assert [o.name for o in org_children(world.root)] == ["Acme EU", "Acme US"]


def test_tenant_scoping(world: World) -> None:
    other = org_insert(parent=None, name="Globex", handle="globex")
    assert tenant_get(handle="acme") == world.root
    assert org_get_in_tenant(tenant=other, org_id=world.eu.pk) is None
    assert org_get_in_tenant(tenant=world.root, org_id="not-a-uuid") is None


def test_usable_follows_ancestors(world: World) -> None:
    assert org_is_usable(world.sales)
    org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    assert not org_is_usable(world.sales)
    assert org_is_usable(world.us)


def test_ancestors_is_one_query(world: World) -> None:
    with CaptureQueriesContext(connection) as ctx:
        org_ancestors(world.sales)
    assert len(ctx.captured_queries) == 1
