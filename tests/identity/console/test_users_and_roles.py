"""Console pages of identity: overview, Users, Roles — what each persona sees and may do."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.audit.models import AuditEvent
from identity.models import Role, RoleAssignment, User, UserAssociation
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
    token = client.get("/t/acme/login/").cookies[settings.CSRF_COOKIE_NAME].value
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


# --- sharing users with the organizations below their own --------------------------------


def test_user_page_offers_sharing_only_where_the_user_is_resident(admin_client: Client, world: World) -> None:
    own = admin_client.get(console_url(world.root, f"users/{world.target.pk}/")).content.decode()
    assert "Share with organizations" in own and "Stop sharing" in own
    shared_in = admin_client.get(console_url(world.eu, f"users/{world.target.pk}/")).content.decode()
    assert "Share with organizations" not in shared_in and "Stop sharing" not in shared_in
    assert "decided by the administrators of Acme" in shared_in
    # The sharing page of a shared-in user is refused in the child's Console.
    assert admin_client.get(console_url(world.eu, f"users/{world.target.pk}/sharing/")).status_code == 403


def test_sharing_page_lists_the_organizations_below(admin_client: Client, world: World) -> None:
    response = admin_client.get(console_url(world.root, f"users/{world.impersonator.pk}/sharing/"))
    assert response.status_code == 200
    assert [o.name for o in response.context["page"].orgs] == ["Acme EU", "Acme EU Sales", "Acme US"]
    found = admin_client.get(console_url(world.root, f"users/{world.target.pk}/sharing/?q=acme%20eu"))
    page = found.context["page"]
    assert [o.name for o in page.orgs] == ["Acme EU", "Acme EU Sales"]
    assert page.shared_ids == {world.eu.pk}  # target is shared with Acme EU already
    body = found.content.decode()
    assert "Shared already" in body and f'name="organizations" value="{world.sales.pk}"' in body


def test_share_with_organizations_from_the_console(admin_client: Client, world: World) -> None:
    url = console_url(world.root, f"users/{world.impersonator.pk}/sharing/")
    response = admin_client.post(url, {"organizations": [str(world.eu.pk), str(world.us.pk)]})
    assert response.status_code == 302
    assert response["Location"] == console_url(world.root, f"users/{world.impersonator.pk}/")
    assert set(
        UserAssociation.objects.filter(user=world.impersonator).values_list("organization__name", flat=True)
    ) == {"Acme EU", "Acme US"}
    events = AuditEvent.objects.filter(action="user-share", subject_id=world.impersonator.pk)
    assert {e.org_id for e in events} == {world.eu.pk, world.us.pk}
    assert {e.actor_id for e in events} == {world.admin.pk}
    page = admin_client.get(response["Location"]).content.decode()
    assert "impersonator is now shared with Acme EU, Acme US." in page


def test_shared_user_is_listed_in_the_childs_users_with_the_home_organization(
    admin_client: Client, world: World
) -> None:
    admin_client.post(
        console_url(world.root, f"users/{world.impersonator.pk}/sharing/"),
        {"organizations": [str(world.us.pk)]},
    )
    response = admin_client.get(console_url(world.us, "users/"))
    assert world.impersonator.pk in response.context["page"].shared_ids
    assert "Shared from Acme" in response.content.decode()


def test_share_refusals_are_messages_not_errors(admin_client: Client, world: World) -> None:
    from organizations.services import org_set_status

    url = console_url(world.root, f"users/{world.impersonator.pk}/sharing/")
    response = admin_client.post(url, {})
    assert response.status_code == 400 and b"Choose at least one organization." in response.content
    response = admin_client.post(url, {"organizations": ["not-a-uuid"]})
    assert response.status_code == 400
    org_set_status(org=world.us, status="disabled")
    response = admin_client.post(url, {"organizations": [str(world.eu.pk), str(world.us.pk)]})
    assert response.status_code == 400 and b"Acme US is disabled" in response.content
    # Its own organization is not below it.
    response = admin_client.post(url, {"organizations": [str(world.root.pk)]})
    assert response.status_code == 403
    assert not UserAssociation.objects.filter(user=world.impersonator).exists()


def test_child_admin_cannot_share_into_another_branch(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    # A user of Acme EU, into the sibling branch: not below Acme EU.
    response = client.post(
        console_url(world.eu, f"users/{world.eu_user.pk}/sharing/"), {"organizations": [str(world.us.pk)]}
    )
    assert response.status_code == 403
    # The parent's Console is not theirs at all.
    response = client.post(
        console_url(world.root, f"users/{world.impersonator.pk}/sharing/"),
        {"organizations": [str(world.eu.pk)]},
    )
    assert response.status_code == 403
    response = client.post(
        console_url(world.root, f"users/{world.target.pk}/sharing/remove/"),
        {"organization": str(world.eu.pk)},
    )
    assert response.status_code == 403
    assert not UserAssociation.objects.filter(user=world.eu_user).exists()
    assert UserAssociation.objects.filter(user=world.target, organization=world.eu).exists()
    # Within their own subtree they can.
    response = client.post(
        console_url(world.eu, f"users/{world.eu_user.pk}/sharing/"), {"organizations": [str(world.sales.pk)]}
    )
    assert response.status_code == 302
    assert UserAssociation.objects.filter(user=world.eu_user, organization=world.sales).exists()


def test_unshare_from_the_console(admin_client: Client, world: World) -> None:
    from identity.services.roles import role_assign

    role_assign(actor=None, role=world.system.administrator, org=world.eu, user=world.target)
    url = console_url(world.root, f"users/{world.target.pk}/sharing/remove/")
    response = admin_client.post(url, {"organization": str(world.eu.pk), "back": "sharing"})
    assert response.status_code == 302
    assert response["Location"] == console_url(world.root, f"users/{world.target.pk}/sharing/")
    assert not UserAssociation.objects.filter(user=world.target).exists()
    assert not RoleAssignment.objects.filter(association__user=world.target).exists()
    event = AuditEvent.objects.get(action="user-unshare")
    assert event.actor_id == world.admin.pk and event.data["roles_removed"] == ["Administrator"]
    assert b"target is no longer shared with Acme EU." in admin_client.get(response["Location"]).content
    # Gone from the child's Users.
    assert world.target.pk not in {
        u.pk for u in admin_client.get(console_url(world.eu, "users/")).context["page"].users
    }
    # Again: a clear message, not an error.
    response = admin_client.post(url, {"organization": str(world.eu.pk)}, follow=True)
    assert response.status_code == 200 and b"target is not shared with Acme EU." in response.content


def test_unsharing_yourself_is_refused(admin_client: Client, world: World) -> None:
    from identity.services.users import user_share

    user_share(actor=None, user=world.admin, org=world.eu)
    response = admin_client.post(
        console_url(world.root, f"users/{world.admin.pk}/sharing/remove/"),
        {"organization": str(world.eu.pk)},
        follow=True,
    )
    assert b"You cannot stop sharing your own account" in response.content
    assert UserAssociation.objects.filter(user=world.admin, organization=world.eu).exists()


def test_sharing_needs_csrf(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    token = client.get("/t/acme/login/").cookies[settings.CSRF_COOKIE_NAME].value
    client.post(
        "/t/acme/login/",
        {"username": "admin", "password": "correct-horse-battery", "csrfmiddlewaretoken": token},
    )
    share = client.post(
        console_url(world.root, f"users/{world.impersonator.pk}/sharing/"),
        {"organizations": [str(world.eu.pk)]},
    )
    unshare = client.post(
        console_url(world.root, f"users/{world.target.pk}/sharing/remove/"),
        {"organization": str(world.eu.pk)},
    )
    assert share.status_code == 403 and unshare.status_code == 403
    assert not UserAssociation.objects.filter(user=world.impersonator).exists()
    assert UserAssociation.objects.filter(user=world.target, organization=world.eu).exists()


def test_sharing_page_query_count_does_not_grow(admin_client: Client, world: World) -> None:
    from organizations.services import organization_create

    url = console_url(world.root, f"users/{world.impersonator.pk}/sharing/")
    few = _count_queries(admin_client, url)
    for i in range(30):
        organization_create(actor=None, parent=world.us, name=f"Branch {i:02d}", handle=f"branch-{i}")
    assert _count_queries(admin_client, url) == few


# --- the user picker (Roles → assign) --------------------------------------------------


def test_picker_as_you_type_returns_the_matching_members(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    role = world.system.administrator
    url = console_url(world.eu, f"roles/{role.pk}/assign/")
    page = client.get(console_url(world.eu, f"roles/{role.pk}/")).content.decode()
    assert f'hx-get="{url}"' in page and "Find by username, email or name" in page
    fragment = client.get(url + "?q=ta", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and "HX-Request" in fragment["Vary"]
    body = fragment.content.decode()
    assert "<html" not in body  # just the results
    assert [u.username for u in fragment.context["picker"].page.users] == ["target"]
    assert "Shared from Acme" in body and f'name="user_id" value="{world.target.pk}"' in body
    # Members only: nobody from the parent or a sibling.
    assert client.get(url + "?q=us-", HTTP_HX_REQUEST="true").context["picker"].page.users == []
    assert client.get(url + "?q=admin", HTTP_HX_REQUEST="true").context["picker"].page.users == []


def test_picker_without_javascript_is_a_results_page_and_a_click_assigns(
    client: Client, world: World
) -> None:
    sign_in(client, world.eu_admin)
    role = world.system.administrator
    url = console_url(world.eu, f"roles/{role.pk}/assign/")
    results = client.get(url + "?q=eu-")
    assert results.status_code == 200
    body = results.content.decode()
    assert "<h1" in body and "Assign Administrator" in body
    assert {u.username for u in results.context["picker"].page.users} == {"eu-admin", "eu-user"}
    response = client.post(url, {"user_id": str(world.eu_user.pk)})
    assert response.status_code == 302
    assert RoleAssignment.objects.filter(role=role, user=world.eu_user).exists()
    event = AuditEvent.objects.filter(action="role-assign", subject_id=world.eu_user.pk).latest("seq")
    assert event.actor_id == world.eu_admin.pk
    # Whoever has the role already is marked instead of offered.
    again = client.get(url + "?q=eu-user")
    assert world.eu_user.pk in again.context["picker"].holders and "Has this role" in again.content.decode()
    # A shared user, by id: the role goes to their profile here.
    assert client.post(url, {"user_id": str(world.target.pk)}).status_code == 302
    assert RoleAssignment.objects.filter(role=role, association__user=world.target).exists()


def test_picker_refuses_people_who_are_not_members(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    role = world.system.administrator
    url = console_url(world.eu, f"roles/{role.pk}/assign/")
    assert client.post(url, {"user_id": str(world.other_org_user.pk)}).status_code == 404
    assert client.post(url, {"user_id": "not-a-uuid"}).status_code == 400
    response = client.post(url, {})
    assert response.status_code == 400 and b"Choose a person." in response.content
    holders = RoleAssignment.objects.filter(role=role).exclude(user__in=[world.admin, world.eu_admin])
    assert not holders.exists()


def test_picker_search_needs_the_list_users_permission(client: Client, world: World) -> None:
    from identity.services.roles import role_assign

    roles_only = role_create(
        actor=None,
        org=world.eu,
        name="Role keeper",
        audience_application=world.system.console,
        permissions=["internal_role_mgt_view", "internal_role_mgt_update"],
    )
    keeper = make_user(world.eu, "keeper")
    role_assign(actor=None, role=roles_only, org=world.eu, user=keeper)
    sign_in(client, keeper)
    role = world.system.administrator
    assert client.get(console_url(world.eu, f"roles/{role.pk}/assign/?q=e")).status_code == 403
    page = client.get(console_url(world.eu, f"roles/{role.pk}/")).content.decode()
    assert "needs the “List users” permission" in page and "hx-get" not in page


def test_unsharing_a_user_who_holds_roles_there_needs_the_role_permission(
    client: Client, world: World
) -> None:
    """Stopping a share removes the user's roles in that organization: an administrator who may
    update users but not manage roles is told so, and nothing changes."""
    from identity.services.roles import role_assign, role_create
    from identity.services.users import user_share

    helpdesk = role_create(
        actor=None,
        org=world.root,
        name="Helpdesk",
        audience_application=world.system.console,
        permissions=["internal_user_mgt_list", "internal_user_mgt_view", "internal_user_mgt_update"],
    )
    clerk = make_user(world.root, "clerk")
    role_assign(actor=None, role=helpdesk, org=world.root, user=clerk)
    alice = make_user(world.root, "alice")
    user_share(actor=None, user=alice, org=world.eu)
    role_assign(actor=None, role=world.system.administrator, org=world.eu, user=alice)
    sign_in(client, clerk)
    url = console_url(world.root, f"users/{alice.pk}/sharing/remove/")
    answer = client.post(url, {"organization": str(world.eu.pk)}, follow=True)
    assert answer.status_code == 200
    assert "needs the permission to manage roles" in answer.content.decode()
    assert UserAssociation.objects.filter(user=alice, organization=world.eu).exists()
    assert not AuditEvent.objects.filter(action="user-unshare").exists()
