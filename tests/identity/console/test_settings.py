"""Console Settings: the Administrators tab and the organization's Console login flow."""

from __future__ import annotations

from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import LoginFlow, RoleAssignment
from identity.selectors.applications import login_flow_steps
from tests.conftest import World, console_url, sign_in


def test_page_lists_the_administrators_of_this_org(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    body = client.get(console_url(world.eu, "settings/")).content.decode()
    assert "eu-admin" in body and ">admin<" not in body
    assert "inherited from Acme" in body


def test_add_and_remove_an_administrator(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    admin_role = world.system.administrator
    response = client.post(console_url(world.eu, "settings/administrators/add/"), {"username": "eu-user"})
    assert response.status_code == 302
    assert RoleAssignment.objects.filter(role=admin_role, user=world.eu_user).exists()
    response = client.post(console_url(world.eu, "settings/administrators/add/"), {"username": "us-user"})
    assert response.status_code == 400
    response = client.post(
        console_url(world.eu, "settings/administrators/remove/"), {"user_id": str(world.eu_user.pk)}
    )
    assert response.status_code == 302
    assert not RoleAssignment.objects.filter(role=admin_role, user=world.eu_user).exists()
    # Removing oneself is refused (someone must remain able to administer).
    client.post(console_url(world.eu, "settings/administrators/remove/"), {"user_id": str(world.eu_admin.pk)})
    assert RoleAssignment.objects.filter(role=admin_role, user=world.eu_admin).exists()


def test_child_sets_its_own_console_flow_and_returns_to_the_parents(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    url = console_url(world.eu, "settings/login-flow/")
    response = client.post(
        url, {"step": ["SharedUserIdentifierExecutor", "BasicAuthenticator,email-otp"], "action": "save"}
    )
    assert response.status_code == 302
    console = world.system.console
    assert login_flow_steps(application=console, org=world.eu) == [
        ["SharedUserIdentifierExecutor"],
        ["BasicAuthenticator", "email-otp"],
    ]
    assert login_flow_steps(application=console, org=world.root) == [["BasicAuthenticator"]]
    assert AuditEvent.objects.filter(action="login-flow-update", actor_id=world.eu_admin.pk).exists()
    client.post(url, {"reset": "1"})
    assert not LoginFlow.objects.filter(application=console, organization=world.eu).exists()


def test_a_broken_flow_is_refused_with_the_reason(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    url = console_url(world.eu, "settings/login-flow/")
    for steps, message in [
        (["BasicAuthenticator,SharedUserIdentifierExecutor"], b"must be the only authentication in step 1"),
        (["SharedUserIdentifierExecutor"], b"add a second step that authenticates them"),
        (["email-otp"], b"Email one-time code cannot be in step 1"),
        (["MagicLink"], b"an authentication actas does not know"),
    ]:
        response = client.post(url, {"step": steps, "action": "save"})
        assert response.status_code == 400 and message in response.content, steps
    assert not LoginFlow.objects.filter(organization=world.eu).exists()


def test_others_cannot_change_settings(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(
        console_url(world.root, "settings/login-flow/"), {"step": "email-otp", "action": "save"}
    )
    assert response.status_code == 403
    sign_in(Client(), world.target)
    assert (
        client.post(console_url(world.us, "settings/administrators/add/"), {"username": "x"}).status_code
        == 403
    )


def test_add_an_administrator_with_the_picker(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    url = console_url(world.eu, "settings/administrators/add/")
    page = client.get(console_url(world.eu, "settings/")).content.decode()
    assert f'hx-get="{url}"' in page and "Add an administrator" in page
    # As you type (htmx): the matching members of Acme EU, resident and shared in.
    fragment = client.get(url + "?q=t", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and b"<html" not in fragment.content
    assert [u.username for u in fragment.context["picker"].page.users] == ["target"]
    assert b"Shared from Acme" in fragment.content
    # Without JavaScript: a page of results; eu-admin is marked as an administrator already.
    results = client.get(url + "?q=eu")
    assert results.status_code == 200 and b"<h1" in results.content
    assert results.context["picker"].holders == {world.eu_admin.pk}
    assert b"Administrator already" in results.content
    response = client.post(url, {"user_id": str(world.target.pk)})
    assert response.status_code == 302 and response["Location"] == console_url(world.eu, "settings/")
    admin_role = world.system.administrator
    assert RoleAssignment.objects.filter(role=admin_role, association__user=world.target).exists()
    event = AuditEvent.objects.filter(action="role-assign", subject_id=world.target.pk).latest("seq")
    assert event.actor_id == world.eu_admin.pk and event.org_id == world.eu.pk
    assert b"target is now an administrator of Acme EU." in client.get(response["Location"]).content


def test_picker_of_another_branch_is_refused(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.us, "settings/administrators/add/?q=us")).status_code == 403
    response = client.post(
        console_url(world.us, "settings/administrators/add/"), {"user_id": str(world.other_org_user.pk)}
    )
    assert response.status_code == 403
    assert not RoleAssignment.objects.filter(user=world.other_org_user).exists()
