"""No privilege escalation through roles, and roles stay in their own branch."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from identity.models import RoleAssignment, User
from identity.selectors.permissions import user_scopes_along_path, user_scopes_for_application
from identity.selectors.roles import roles_in_org
from identity.services.roles import role_assign, role_create
from tests.conftest import World, console_url, make_user, sign_in


@pytest.fixture
def role_manager(world: World) -> User:
    """An EU user who may manage roles and view users, nothing else."""
    role = role_create(
        actor=None,
        org=world.eu,
        name="Role managers",
        audience_application=world.system.console,
        permissions=["internal_role_mgt_view", "internal_role_mgt_create", "internal_role_mgt_update"],
    )
    manager = make_user(world.eu, "manager")
    role_assign(actor=None, role=role, org=world.eu, user=manager)
    return manager


def test_role_made_in_a_child_stays_there(client: Client, world: World) -> None:
    """A Sales role for the (shared) Console is Sales' own: not visible, assignable or
    effective in its parent or its sibling."""
    sales_role = role_create(
        actor=None,
        org=world.sales,
        name="Helpers",
        audience_application=world.system.console,
        permissions=["internal_org_mgt_view"],
    )
    assert sales_role not in roles_in_org(world.eu)
    assert sales_role not in roles_in_org(world.us)
    assert sales_role in roles_in_org(world.sales)
    with pytest.raises(ValidationError):
        role_assign(actor=None, role=sales_role, org=world.eu, user=world.eu_user)
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.eu, f"roles/{sales_role.pk}/")).status_code == 404
    # Even a row written behind the services' back grants nothing outside Sales.
    RoleAssignment.objects.create(role=sales_role, user=world.eu_user)
    console = world.system.console
    assert user_scopes_for_application(user=world.eu_user, application=console, org=world.eu) == frozenset()
    assert user_scopes_along_path(user=world.eu_user, application=console, org=world.sales) == frozenset()


def test_cannot_create_a_role_with_permissions_one_lacks(
    client: Client, world: World, role_manager: User
) -> None:
    sign_in(client, role_manager)
    response = client.post(
        console_url(world.eu, "roles/create/"),
        {"name": "Power", "audience": "organization", "permissions": ["internal_user_mgt_create"]},
    )
    assert response.status_code == 400
    assert b"You can only grant permissions you hold yourself" in response.content
    response = client.post(
        console_url(world.eu, "roles/create/"),
        {"name": "Fine", "audience": "organization", "permissions": ["internal_role_mgt_view"]},
    )
    assert response.status_code == 302


def test_cannot_assign_a_role_one_does_not_hold(client: Client, world: World, role_manager: User) -> None:
    sign_in(client, role_manager)
    admin_role = world.system.administrator
    response = client.post(console_url(world.eu, f"roles/{admin_role.pk}/assign/"), {"username": "manager"})
    assert response.status_code == 400
    assert not RoleAssignment.objects.filter(role=admin_role, user=role_manager).exists()


def test_cannot_widen_a_role_beyond_ones_own(client: Client, world: World, role_manager: User) -> None:
    own = role_create(actor=None, org=world.eu, name="Mine", audience_application=None, permissions=[])
    sign_in(client, role_manager)
    response = client.post(
        console_url(world.eu, f"roles/{own.pk}/permissions/"), {"permissions": ["internal_user_mgt_delete"]}
    )
    assert response.status_code == 400
    assert own.permissions.count() == 0


def test_organization_roles_never_carry_impersonation(world: World) -> None:
    with pytest.raises(ValidationError):
        role_create(
            actor=None,
            org=world.eu,
            name="Sneaky",
            audience_application=None,
            permissions=["internal_user_impersonate"],
        )


def test_locked_user_holds_nothing(world: World) -> None:
    from identity.services.users import user_set_flags

    console = world.system.console
    assert user_scopes_for_application(user=world.admin, application=console, org=world.root)
    user_set_flags(actor=None, user=world.admin, is_locked=True)
    assert user_scopes_for_application(user=world.admin, application=console, org=world.root) == frozenset()
