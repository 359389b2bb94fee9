"""Console pages of identity: overview, Users, Roles — what each persona sees and may do."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.models import AuditEvent, Role, RoleAssignment, User
from identity.services.roles import role_create
from tests.conftest import World, console_url, make_user, sign_in


def _count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["", "users/", "roles/", "organizations/"])
def test_ordinary_user_gets_403_page(client: Client, world: World, page: str) -> None:
    sign_in(client, world.target)
    response = client.get(console_url(world.root, page))
    assert response.status_code == 403
    assert b"administrator" in response.content


@pytest.mark.parametrize("org_attr", ["root", "us"])
def test_child_admin_cannot_open_parent_or_sibling_console(
    client: Client, world: World, org_attr: str
) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(getattr(world, org_attr), "users/")).status_code == 403


def test_child_admin_reaches_its_subtree(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.eu, "users/")).status_code == 200
    assert client.get(console_url(world.sales, "users/")).status_code == 200


def test_admin_of_another_tenant_gets_403(client: Client, world: World) -> None:
    from identity.services.tenants import tenant_bootstrap

    _, globex_admin = tenant_bootstrap(
        actor=None,
        handle="globex",
        name="Globex",
        admin_username="admin",
        admin_password="another-long-password",
    )
    client.post("/t/globex/login/", {"username": "admin", "password": "another-long-password"})
    assert client.get("/t/globex/console/").status_code == 200
    assert client.get("/t/acme/console/users/").status_code == 403


def test_overview(admin_client: Client, world: World) -> None:
    response = admin_client.get(console_url(world.root))
    assert response.status_code == 200
    assert b"Acme" in response.content and b"60" in response.content


# --- users ------------------------------------------------------------------------------


def test_user_list_shows_residents_and_shared(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, "users/")).content.decode()
    assert "eu-admin" in body and "eu-user" in body and "target" in body
    assert "Shared" in body and "Resident" in body
    assert "sales-user" not in body and "us-user" not in body and ">admin<" not in body


def test_user_list_search_and_pages(admin_client: Client, world: World) -> None:
    for i in range(30):
        make_user(world.us, f"m{i:02d}")
    body = admin_client.get(console_url(world.us, "users/?q=m1")).content.decode()
    assert re.findall(r">(m1\d)<", body) == [f"m1{i}" for i in range(10)]
    first = admin_client.get(console_url(world.us, "users/")).content.decode()
    cursor = re.search(r"after=([A-Za-z0-9_-]+)", first)
    assert cursor is not None
    second = admin_client.get(console_url(world.us, f"users/?after={cursor.group(1)}")).content.decode()
    names_first = set(re.findall(r">(m\d\d|us-user)<", first))
    names_second = set(re.findall(r">(m\d\d|us-user)<", second))
    assert names_first and names_second and not names_first & names_second
    assert len(names_first | names_second) == 31


def test_user_list_query_count_does_not_grow(admin_client: Client, world: World) -> None:
    for i in range(3):
        make_user(world.us, f"few{i}")
    few = _count_queries(admin_client, console_url(world.us, "users/"))
    for i in range(40):
        make_user(world.us, f"many{i:02d}")
    many = _count_queries(admin_client, console_url(world.us, "users/"))
    assert many == few


def test_create_user(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.eu, "users/create/"),
        {
            "username": "Nora",
            "email": "nora@example.test",
            "given_name": "Nora",
            "family_name": "N",
            "password": "a-fine-password",
        },
    )
    user = User.objects.get(username="nora")
    assert response.status_code == 302 and response["Location"] == console_url(world.eu, f"users/{user.pk}/")
    assert user.organization == world.eu
    assert AuditEvent.objects.filter(
        action="user-create", subject_id=user.pk, actor_id=world.admin.pk
    ).exists()


def test_create_duplicate_username_is_a_form_error(admin_client: Client, world: World) -> None:
    before = User.objects.count()
    response = admin_client.post(
        console_url(world.eu, "users/create/"),
        {
            "username": "eu-user",
            "password": "a-fine-password",
        },
    )
    assert response.status_code == 400
    assert b"already exists in this organization" in response.content
    assert User.objects.count() == before


def test_user_detail_and_foreign_user_404(admin_client: Client, world: World) -> None:
    response = admin_client.get(console_url(world.eu, f"users/{world.target.pk}/"))
    assert response.status_code == 200 and b"target" in response.content
    assert admin_client.get(console_url(world.eu, f"users/{world.other_org_user.pk}/")).status_code == 404


def test_child_admin_cannot_create_users_in_parent(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.root, "users/create/"), {"username": "x", "password": "a-fine-password"}
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="x").exists()


def test_state_change_needs_csrf(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.get("/t/acme/login/").cookies["csrftoken"].value
    signed_in = client.post(
        "/t/acme/login/",
        {"username": "admin", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
    )
    assert signed_in.status_code == 302 and client.session["_auth_user_id"] == str(world.admin.pk)
    response = client.post(
        console_url(world.root, "users/create/"), {"username": "x", "password": "a-fine-password"}
    )
    assert response.status_code == 403
    assert not User.objects.filter(username="x").exists()


# --- roles ------------------------------------------------------------------------------


def test_role_list_marks_system_and_shared(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    role_create(actor=None, org=world.eu, name="Helpdesk", audience_application=None)
    body = client.get(console_url(world.eu, "roles/")).content.decode()
    assert "Administrator" in body and "Helpdesk" in body and "System" in body


def test_create_role_and_errors(admin_client: Client, world: World) -> None:
    url = console_url(world.eu, "roles/create/")
    response = admin_client.post(
        url, {"name": "Helpdesk", "audience": "organization", "permissions": ["internal_user_mgt_view"]}
    )
    role = Role.objects.get(name="Helpdesk")
    assert response.status_code == 302 and role.organization == world.eu
    assert list(role.permissions.values_list("name", flat=True)) == ["internal_user_mgt_view"]
    response = admin_client.post(url, {"name": "", "audience": "organization"})
    assert response.status_code == 400
    response = admin_client.post(url, {"name": "X", "audience": "application"})
    assert response.status_code == 400 and b"Choose the application" in response.content
    us_app = world.system.myaccount  # not shared with Acme EU
    response = admin_client.post(
        url, {"name": "X", "audience": "application", "audience_application": us_app.pk}
    )
    assert response.status_code == 400
    assert not Role.objects.filter(name="X").exists()


def test_assign_and_unassign_in_child_org(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    role = world.system.administrator  # shared system role: assignable, not editable
    url = console_url(world.eu, f"roles/{role.pk}/")
    page = client.get(url)
    assert page.status_code == 200 and b"assigned but not edited" in page.content
    response = client.post(url + "assign/", {"username": "target"})
    assert response.status_code == 302
    assignment = RoleAssignment.objects.get(role=role, association__user=world.target)
    assert assignment.association is not None and assignment.association.organization == world.eu
    response = client.post(url + "assign/", {"username": "us-user"})
    assert response.status_code == 400 and b"No member" in response.content
    response = client.post(url + "unassign/", {"user_id": str(world.target.pk)})
    assert response.status_code == 302
    assert not RoleAssignment.objects.filter(role=role, association__user=world.target).exists()


def test_system_role_permissions_cannot_be_changed(admin_client: Client, world: World) -> None:
    role = world.system.administrator
    response = admin_client.post(
        console_url(world.root, f"roles/{role.pk}/permissions/"), {"permissions": []}
    )
    assert response.status_code == 400
    assert role.permissions.count() > 0


def test_role_detail_query_count_does_not_grow(admin_client: Client, world: World) -> None:
    role = role_create(actor=None, org=world.us, name="Crowd", audience_application=None)
    url = console_url(world.us, f"roles/{role.pk}/")
    from identity.services.roles import role_assign

    for i in range(2):
        role_assign(actor=None, role=role, org=world.us, user=make_user(world.us, f"c{i}"))
    few = _count_queries(admin_client, url)
    for i in range(2, 30):
        role_assign(actor=None, role=role, org=world.us, user=make_user(world.us, f"c{i}"))
    assert _count_queries(admin_client, url) == few
    assert _count_queries(admin_client, console_url(world.us, "roles/")) <= few + 5


def test_user_detail_shows_only_memberships_in_this_branch(client: Client, world: World) -> None:
    from identity.services.users import user_share

    user_share(actor=None, user=world.target, org=world.us)
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, f"users/{world.target.pk}/")).content.decode()
    assert "Acme EU" in body and "Acme US" not in body


def test_hostile_query_strings_are_not_errors(admin_client: Client, world: World) -> None:
    for query in ("q=a%00b", "q=" + "x" * 5000, "after=%00%00", "after=" + "A" * 5000, "q=%F0%9F%98%80"):
        assert admin_client.get(console_url(world.eu, f"users/?{query}")).status_code == 200
    assert admin_client.get(console_url(world.root, "organizations/?node=%00")).status_code == 404


def test_long_profile_values_are_form_errors_or_fine(admin_client: Client, world: World) -> None:
    response = admin_client.post(
        console_url(world.eu, "users/create/"),
        {
            "username": "longnames",
            "given_name": "G" * 150,
            "family_name": "F" * 150,
            "password": "a-fine-password",
        },
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user-create", target_id__isnull=False).exists()
    response = admin_client.post(
        console_url(world.eu, "users/create/"),
        {"username": "longmail", "email": "a" * 250 + "@example.test", "password": "a-fine-password"},
    )
    assert response.status_code == 400
