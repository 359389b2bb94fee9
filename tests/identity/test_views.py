"""Sign-in through the BasicAuthenticator, the SSO session, sign-out."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client, override_settings

from identity.audit.models import AuditEvent
from identity.middleware import SSO_SESSION_KEY
from identity.models import SSOSession
from identity.services.sessions import sso_session_end
from identity.services.users import user_set_flags
from organizations.models import Organization
from organizations.services import org_set_status
from tests.conftest import PASSWORD, World, console_url, sign_in

LOGIN = "/t/acme/login/"


def test_login_page_renders(client: Client, world: World) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 200
    assert b"Acme" in response.content and b'name="password"' in response.content


def test_success_starts_an_sso_session(client: Client, world: World) -> None:
    response = client.post(
        LOGIN + "?next=/t/acme/console/users/", {"username": "ADMIN", "password": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/t/acme/console/users/"
    session = SSOSession.objects.get(user=world.admin)
    assert session.amr == ["BasicAuthenticator"] and session.ended_at is None
    assert client.session[SSO_SESSION_KEY] == session.sid
    assert client.session["_auth_user_id"] == str(world.admin.pk)
    assert session.sid != client.session.session_key
    assert AuditEvent.objects.filter(action="login-success", actor_id=world.admin.pk).exists()


@pytest.mark.parametrize("username", ["admin", "nobody"])
def test_failure_is_generic(client: Client, world: World, username: str) -> None:
    response = client.post(LOGIN, {"username": username, "password": "wrong-password"})
    assert response.status_code == 400
    assert b"The username or password is incorrect." in response.content
    assert not SSOSession.objects.exists()
    event = AuditEvent.objects.filter(action="login-failure").latest("seq")
    assert event.target_id == username and event.outcome == "failure"


def test_user_of_another_org_cannot_sign_in_here(client: Client, world: World) -> None:
    response = client.post(LOGIN, {"username": "eu-admin", "password": PASSWORD})
    assert response.status_code == 400
    response = client.post(f"/t/acme/o/{world.eu.pk}/login/", {"username": "eu-admin", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == console_url(world.eu)


def test_locked_and_disabled_users_cannot_sign_in(client: Client, world: World) -> None:
    user_set_flags(actor=None, user=world.target, is_locked=True)
    assert client.post(LOGIN, {"username": "target", "password": PASSWORD}).status_code == 400
    user_set_flags(actor=None, user=world.impersonator, is_active=False)
    assert client.post(LOGIN, {"username": "impersonator", "password": PASSWORD}).status_code == 400


@override_settings(ACTAS_LOGIN_MAX_FAILURES_PER_USER=3)
def test_rate_limited_per_user(client: Client, world: World) -> None:
    for _ in range(3):
        client.post(LOGIN, {"username": "admin", "password": "nope-nope"})
    response = client.post(LOGIN, {"username": "admin", "password": PASSWORD})
    assert response.status_code == 400 and b"Too many failed sign-in attempts" in response.content
    assert AuditEvent.objects.filter(action="login-throttled").exists()
    # Another user from the same address is not affected by admin's budget.
    assert client.post(LOGIN, {"username": "target", "password": PASSWORD}).status_code == 302


@override_settings(ACTAS_LOGIN_MAX_FAILURES_PER_IP=4)
def test_rate_limited_per_ip(client: Client, world: World) -> None:
    for name in ("a", "b", "c", "d"):
        client.post(LOGIN, {"username": name, "password": "nope-nope"})
    response = client.post(LOGIN, {"username": "admin", "password": PASSWORD})
    assert b"Too many failed sign-in attempts" in response.content
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert other.post(LOGIN, {"username": "admin", "password": PASSWORD}).status_code == 302


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "/t/other/console/"])
def test_next_is_confined_to_the_tenant(client: Client, world: World, next_url: str) -> None:
    response = client.post(LOGIN, {"username": "admin", "password": PASSWORD, "next": next_url})
    assert response["Location"] == "/t/acme/console/"


def test_console_requires_sign_in(client: Client, world: World) -> None:
    response = client.get("/t/acme/console/users/")
    assert response.status_code == 302
    assert response["Location"] == "/t/acme/login/?next=%2Ft%2Facme%2Fconsole%2Fusers%2F"
    response = client.get(console_url(world.eu, "users/"))
    assert response["Location"].startswith(f"/t/acme/o/{world.eu.pk}/login/")


def test_logout_is_post_only_and_ends_session(admin_client: Client, world: World) -> None:
    assert admin_client.get("/t/acme/logout/").status_code == 405
    response = admin_client.post("/t/acme/logout/")
    assert response.status_code == 302
    assert SSOSession.objects.get(user=world.admin).end_reason == "signed-out"
    assert admin_client.get("/t/acme/console/").status_code == 302


def test_logout_needs_csrf(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    sign_in_page = client.get(LOGIN)
    token = sign_in_page.cookies[settings.CSRF_COOKIE_NAME].value
    client.post(LOGIN, {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert client.post("/t/acme/logout/").status_code == 403
    assert SSOSession.objects.get(user=world.admin).ended_at is None


def test_ending_the_sso_session_signs_the_browser_out(admin_client: Client, world: World) -> None:
    assert admin_client.get("/t/acme/console/").status_code == 200
    session = SSOSession.objects.get(user=world.admin)
    sso_session_end(actor=world.admin, session=session, reason="ended-elsewhere")
    assert admin_client.get("/t/acme/console/").status_code == 302


def test_locking_a_signed_in_user_signs_them_out(admin_client: Client, world: World) -> None:
    user_set_flags(actor=None, user=world.admin, is_locked=True)
    assert admin_client.get("/t/acme/console/").status_code == 302


def test_disabled_org_refuses_sign_in(client: Client, world: World) -> None:
    org_set_status(org=world.eu, status=Organization.Status.DISABLED)
    response = client.post(f"/t/acme/o/{world.eu.pk}/login/", {"username": "eu-admin", "password": PASSWORD})
    assert response.status_code == 400 and b"disabled" in response.content
    assert not SSOSession.objects.exists()


def test_unknown_tenant_is_404(client: Client, world: World) -> None:
    assert client.get("/t/nope/login/").status_code == 404


def test_request_id_echoed(client: Client, world: World) -> None:
    response = client.get(LOGIN, HTTP_X_REQUEST_ID="abc-123-def-456")
    assert response["X-Request-ID"] == "abc-123-def-456"
    response = client.get(LOGIN, HTTP_X_REQUEST_ID="<script>")
    assert response["X-Request-ID"] != "<script>" and len(response["X-Request-ID"]) == 32


def test_sign_in_helper(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    assert client.get(console_url(world.eu)).status_code == 200
