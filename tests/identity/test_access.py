"""Access checks across a three-level tree: down yes, up and sideways never."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from identity.access import (
    access_console,
    access_console_child_org,
    access_console_role,
    access_console_user,
    access_org_in_tenant,
    access_tenant,
)
from identity.services.roles import role_create
from organizations.models import Organization
from organizations.services import org_insert, org_set_status
from tests.conftest import World


def test_tenant_must_exist_and_be_active(world: World) -> None:
    assert access_tenant(handle="acme") == world.root
    with pytest.raises(Http404):
        access_tenant(handle="nope")


def test_org_must_belong_to_tenant(world: World) -> None:
    other = org_insert(parent=None, name="Globex", handle="globex")
    assert access_org_in_tenant(tenant=world.root, org_id=world.eu.pk) == world.eu
    with pytest.raises(Http404):
        access_org_in_tenant(tenant=other, org_id=world.eu.pk)


@pytest.mark.parametrize(
    ("who", "where", "allowed"),
    [
        ("admin", "root", True),
        ("admin", "eu", True),
        ("admin", "sales", True),
        ("admin", "us", True),
        ("eu_admin", "eu", True),
        ("eu_admin", "sales", True),
        ("eu_admin", "root", False),
        ("eu_admin", "us", False),
        ("target", "root", False),
        ("target", "eu", False),
        ("impersonator", "root", False),
        ("other_org_user", "us", False),
    ],
)
def test_console_access_matrix(world: World, who: str, where: str, allowed: bool) -> None:
    user, org = getattr(world, who), getattr(world, where)
    if allowed:
        assert "internal_user_mgt_list" in access_console(user=user, org=org, scope="internal_user_mgt_list")
    else:
        with pytest.raises(PermissionDenied):
            access_console(user=user, org=org, scope=None)


def test_console_scope_must_be_held(world: World) -> None:
    with pytest.raises(PermissionDenied):
        access_console(user=world.admin, org=world.root, scope="internal_user_impersonate")


def test_disabled_org_locks_its_console(world: World) -> None:
    org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    with pytest.raises(PermissionDenied):
        access_console(user=world.eu_admin, org=world.eu, scope=None)
    with pytest.raises(PermissionDenied):
        access_console(user=world.admin, org=world.sales, scope=None)


def test_objects_outside_the_org_are_not_found(world: World) -> None:
    assert access_console_user(org=world.eu, user_id=world.target.pk) == world.target  # shared in
    for user in (world.admin, world.other_org_user, world.sales_user):
        with pytest.raises(Http404):
            access_console_user(org=world.eu, user_id=user.pk)
    with pytest.raises(Http404):
        access_console_user(org=world.eu, user_id="not-a-uuid")
    assert access_console_child_org(org=world.eu, org_id=world.sales.pk) == world.sales
    for org in (world.root, world.us):
        with pytest.raises(Http404):
            access_console_child_org(org=world.eu, org_id=org.pk)
    us_role = role_create(actor=None, org=world.us, name="US role", audience_application=None)
    with pytest.raises(Http404):
        access_console_role(org=world.eu, role_id=us_role.pk)
    assert access_console_role(org=world.eu, role_id=world.system.administrator.pk)  # shared
