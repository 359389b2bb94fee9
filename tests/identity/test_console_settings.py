"""Console Settings: the Administrators tab and the organization's Console login flow."""

from __future__ import annotations

from django.test import Client

from identity.models import AuditEvent, LoginFlow, RoleAssignment
from identity.selectors import login_flow_steps
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
    response = client.post(url, {"steps": "SharedUserIdentifierExecutor\nBasicAuthenticator, email-otp"})
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
    for text, message in [
        ("BasicAuthenticator, SharedUserIdentifierExecutor", b"only option of the first step"),
        ("SharedUserIdentifierExecutor", b"second step"),
        ("email-otp", b"earlier step"),
        ("MagicLink", b"unknown authenticator"),
    ]:
        response = client.post(url, {"steps": text})
        assert response.status_code == 400 and message in response.content, text
    assert not LoginFlow.objects.filter(organization=world.eu).exists()


def test_others_cannot_change_settings(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    response = client.post(console_url(world.root, "settings/login-flow/"), {"steps": "email-otp"})
    assert response.status_code == 403
    sign_in(Client(), world.target)
    assert (
        client.post(console_url(world.us, "settings/administrators/add/"), {"username": "x"}).status_code
        == 403
    )
