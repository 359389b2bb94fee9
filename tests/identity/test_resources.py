"""API resource services: business resources of a tenant and their scopes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from identity.audit.models import AuditEvent
from identity.models import APIResource, Scope
from identity.services.resources import ScopeSpec, api_resource_create, scope_create
from tests.conftest import World


def _orders(world: World) -> APIResource:
    return api_resource_create(
        actor=world.admin,
        tenant=world.root,
        identifier="https://orders.example",
        name="Orders",
        description="The order API",
        scopes=[ScopeSpec(" orders:read ", "Read orders", read_only=True), ScopeSpec("orders:write")],
    )


def test_create_with_scopes_and_audit(world: World) -> None:
    resource = _orders(world)
    assert resource.tenant == world.root and not resource.is_system
    assert {(s.name, s.read_only, s.tenant_id) for s in resource.scopes.all()} == {
        ("orders:read", True, world.root.pk),
        ("orders:write", False, world.root.pk),
    }
    event = AuditEvent.objects.get(action="api-resource-create")
    assert event.actor_id == world.admin.pk and event.data["scopes"] == ["orders:read", "orders:write"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"identifier": ""}, "identifier"),
        ({"identifier": "has space"}, "identifier"),
        ({"identifier": "x\x00y"}, "identifier"),
        ({"identifier": "system:mine"}, "identifier"),
        ({"identifier": "i" * 256}, "identifier"),
        ({"name": ""}, "name"),
        ({"description": "d" * 1001}, "description"),
        ({"scopes": [ScopeSpec("a b")]}, "scopes"),
        ({"scopes": [ScopeSpec("internal_mine")]}, "scopes"),
        ({"scopes": [ScopeSpec("openid")]}, "scopes"),
        ({"scopes": [ScopeSpec("s" * 151)]}, "scopes"),
        ({"scopes": [ScopeSpec("dup"), ScopeSpec("dup")]}, "scopes"),
        ({"scopes": [ScopeSpec("")]}, "scopes"),
    ],
)
def test_create_validates(world: World, kwargs: dict[str, object], field: str) -> None:
    values: dict[str, object] = {"identifier": "https://api.example", "name": "API", **kwargs}
    with pytest.raises(ValidationError) as exc:
        api_resource_create(actor=world.admin, tenant=world.root, **values)  # type: ignore[arg-type]
    assert field in exc.value.message_dict
    assert not APIResource.objects.filter(is_system=False).exists()


def test_scope_names_are_unique_in_the_tenant(world: World) -> None:
    orders = _orders(world)
    with pytest.raises(ValidationError) as exc:
        api_resource_create(
            actor=world.admin,
            tenant=world.root,
            identifier="https://billing.example",
            name="Billing",
            scopes=[ScopeSpec("orders:read")],
        )
    assert "already exists in this tenant" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        api_resource_create(
            actor=world.admin, tenant=world.root, identifier="https://orders.example", name="X"
        )
    assert "identifier" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        scope_create(actor=world.admin, resource=orders, name="orders:write")
    assert "name" in exc.value.message_dict
    # Another tenant may use the same names.
    from identity.services.tenants import tenant_bootstrap

    globex, _ = tenant_bootstrap(
        actor=None,
        handle="globex",
        name="Globex",
        admin_username="root",
        admin_password="another-long-password",
    )
    api_resource_create(
        actor=None,
        tenant=globex.tenant,
        identifier="https://orders.example",
        name="Orders",
        scopes=[ScopeSpec("orders:read")],
    )
    assert Scope.objects.filter(name="orders:read").count() == 2


def test_only_a_root_organization_owns_resources(world: World) -> None:
    with pytest.raises(ValidationError):
        api_resource_create(actor=world.admin, tenant=world.eu, identifier="https://eu.example", name="EU")


def test_scope_create(world: World) -> None:
    orders = _orders(world)
    scope = scope_create(
        actor=world.admin, resource=orders, name="orders:cancel", display_name="Cancel", read_only=False
    )
    assert scope.resource == orders and scope.tenant_id == world.root.pk
    assert AuditEvent.objects.filter(action="scope-create", data__scope="orders:cancel").exists()
    system = APIResource.objects.get(tenant=world.root, identifier="system:users")
    with pytest.raises(ValidationError):
        scope_create(actor=world.admin, resource=system, name="users:extra")
    for bad in ("", "bad name", "internal_x", "x" * 151, 'quo"te'):
        with pytest.raises(ValidationError):
            scope_create(actor=world.admin, resource=orders, name=bad)
