"""The login-flow engine: multi-step flows, shared users, email codes, SSO reuse."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from identity.audit.models import AuditEvent
from identity.models import Application, EmailOTPChallenge, SSOSession
from identity.notifications.models import OutboxMessage
from identity.notifications.outbox import outbox_deliver
from identity.services.applications import application_create, application_share
from identity.services.loginflows import login_flow_set
from tests.conftest import PASSWORD, World, console_url


def _code_in(mail: Any) -> str:
    """The six-digit code in the plain-text part (never in the subject line)."""
    assert not re.search(r"\d{6}", mail["Subject"])
    plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    match = re.search(r"\b(\d{6})\b", plain.get_payload(decode=True).decode())
    assert match is not None
    return match.group(1)


def _password_then_code_app(world: World) -> Application:
    """A business application whose flow is [password] then [a code by email]."""
    app, _ = application_create(
        actor=None,
        org=world.root,
        name="Payroll",
        grant_types=["authorization_code"],
        redirect_uris=["https://payroll.example/cb"],
    )
    login_flow_set(actor=None, application=app, org=world.root, steps=[["BasicAuthenticator"], ["email-otp"]])
    return app


def _login_url(world: World, org: Any, **params: str) -> str:
    base = "/t/acme/login/" if org.pk == world.root.pk else f"/t/acme/o/{org.pk}/login/"
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}?{query}" if query else base


def test_shared_user_signs_in_to_a_child_org_through_the_identifier_step(
    client: Client, world: World
) -> None:
    """Seed 001: [Shared User Identifier] → [password]; the resident profile signs in."""
    login_flow_set(
        actor=None,
        application=world.system.console,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    url = _login_url(world, world.eu)
    page = client.get(url)
    assert b"Step 1 of 2" in page.content and b'name="password"' not in page.content
    step2 = client.post(url, {"username": "target"})
    assert step2.status_code == 200 and b"Step 2 of 2" in step2.content
    assert b"Signing in as <strong>target</strong>" in step2.content
    done = client.post(url, {"password": PASSWORD})
    assert done.status_code == 302
    session = SSOSession.objects.get(user=world.target)
    assert session.organization == world.eu  # accessing org; the user is resident in Acme
    assert session.amr == ["SharedUserIdentifierExecutor", "BasicAuthenticator"]


def test_identifier_step_reveals_nothing(world: World) -> None:
    login_flow_set(
        actor=None,
        application=world.system.console,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    url = _login_url(world, world.eu)
    pages = []
    for username in ("target", "nobody-here", "us-user"):  # shared-in, unknown, another branch
        browser = Client()
        first = browser.post(url, {"username": username})
        second = browser.post(url, {"password": "a-wrong-password"})
        pages.append(
            (
                first.status_code,
                second.status_code,
                b"The username or password is incorrect." in second.content,
            )
        )
    assert pages == [(200, 400, True)] * 3
    assert not SSOSession.objects.exists()


def test_sso_is_reused_when_the_flow_is_satisfied(client: Client, world: World) -> None:
    app, _ = application_create(
        actor=None,
        org=world.root,
        name="Wiki",
        grant_types=["authorization_code"],
        redirect_uris=["https://wiki.example/cb"],
    )
    client.post(_login_url(world, world.root), {"username": "admin", "password": PASSWORD})
    sessions = SSOSession.objects.count()
    again = client.get(_login_url(world, world.root, client_id=app.client_id, next="/t/acme/console/users/"))
    assert again.status_code == 302 and again["Location"] == "/t/acme/console/users/"
    assert SSOSession.objects.count() == sessions  # same session, nothing asked


def test_stricter_flow_asks_only_for_the_missing_step(client: Client, world: World, smtp_sink: Any) -> None:
    app = _password_then_code_app(world)
    client.post(_login_url(world, world.root), {"username": "admin", "password": PASSWORD})
    url = _login_url(world, world.root, client_id=app.client_id)
    page = client.get(url)
    assert b"Step 2 of 2" in page.content and b"Email me a code" in page.content
    sent = client.post(url, {"authenticator": "email-otp", "action": "send", "client_id": app.client_id})
    assert b"a code is on its way" in sent.content
    outbox = OutboxMessage.objects.get(to_email="admin@example.test", kind="email-otp")
    assert outbox_deliver(message_id_value=str(outbox.pk)) == "sent"
    mail = smtp_sink.wait_for(1)[0]
    code = _code_in(mail)
    wrong = client.post(url, {"authenticator": "email-otp", "code": "000000", "client_id": app.client_id})
    assert wrong.status_code == 400 and b"That code is not right" in wrong.content
    ok = client.post(url, {"authenticator": "email-otp", "code": code, "client_id": app.client_id})
    assert ok.status_code == 302
    session = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    assert session.amr == ["BasicAuthenticator", "email-otp"]  # stepped up, not replaced
    assert AuditEvent.objects.filter(action="login-step-up", actor_id=world.admin.pk).exists()
    challenge = EmailOTPChallenge.objects.get(user=world.admin)
    assert challenge.used_at is not None and challenge.attempts == 1


def test_email_code_is_single_use_and_attempt_limited(client: Client, world: World) -> None:
    app = _password_then_code_app(world)
    url = _login_url(world, world.root, client_id=app.client_id)
    client.post(url, {"username": "target", "password": PASSWORD, "client_id": app.client_id})
    client.post(url, {"authenticator": "email-otp", "action": "send", "client_id": app.client_id})
    challenge = EmailOTPChallenge.objects.get(user=world.target)
    for _ in range(5):
        client.post(url, {"authenticator": "email-otp", "code": "999999", "client_id": app.client_id})
    challenge.refresh_from_db()
    assert challenge.attempts == 5
    # Even the right code is refused now (we cannot read it, so forge the stored hash).
    from identity.authenticators import _code_hash

    challenge.code_hash = _code_hash(str(challenge.pk), "123456")
    challenge.save()
    late = client.post(url, {"authenticator": "email-otp", "code": "123456", "client_id": app.client_id})
    assert late.status_code == 400
    assert not SSOSession.objects.filter(user=world.target).exists()


def test_unknown_or_unavailable_application(client: Client, world: World) -> None:
    assert b"not available" in client.get(_login_url(world, world.root, client_id="nope")).content
    app, _ = application_create(
        actor=None,
        org=world.us,
        name="US only",
        grant_types=["authorization_code"],
        redirect_uris=["https://us.example/cb"],
    )
    assert b"not available" in client.get(_login_url(world, world.eu, client_id=app.client_id)).content
    application_share(actor=None, application=app, mode=Application.SharedAccess.ALL)
    assert b"not available" in client.get(_login_url(world, world.eu, client_id=app.client_id)).content


def test_step_not_offered_is_refused(client: Client, world: World) -> None:
    response = client.post(_login_url(world, world.root), {"authenticator": "email-otp", "action": "send"})
    assert response.status_code == 400 and b"not offered" in response.content
    assert not EmailOTPChallenge.objects.exists()


@pytest.mark.parametrize("who", ["admin", "eu_admin"])
def test_console_sign_in_still_lands_in_the_console(client: Client, world: World, who: str) -> None:
    user = getattr(world, who)
    url = _login_url(world, user.organization)
    response = client.post(url, {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == console_url(user.organization)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_email_code_delivered_by_a_real_worker(celery_worker_live: Any, smtp_sink: Any) -> None:
    """Password, then a code that travels outbox → Redis → Celery worker → SMTP."""
    from identity.services.tenants import tenant_bootstrap

    system, admin = tenant_bootstrap(
        actor=None,
        handle="acme",
        name="Acme",
        admin_username="admin",
        admin_password=PASSWORD,
        admin_email="admin@example.test",
    )
    login_flow_set(
        actor=None,
        application=system.console,
        org=system.tenant,
        steps=[["BasicAuthenticator"], ["email-otp"]],
    )
    client = Client()
    client.post("/t/acme/login/", {"username": "admin", "password": PASSWORD})
    client.post("/t/acme/login/", {"authenticator": "email-otp", "action": "send"})
    mail = smtp_sink.wait_for(1, timeout=20)[0]
    assert mail["To"] == "admin@example.test"
    code = _code_in(mail)
    response = client.post("/t/acme/login/", {"authenticator": "email-otp", "code": code})
    assert response.status_code == 302 and response["Location"] == "/t/acme/console/"
    assert SSOSession.objects.get(user=admin).amr == ["BasicAuthenticator", "email-otp"]
    assert OutboxMessage.objects.get().status == "sent"


def test_editing_a_flow_restarts_sign_ins_in_progress(client: Client, world: World) -> None:
    """A half-done [identifier] → [password] sign-in must not complete when the flow shrinks."""
    console = world.system.console
    login_flow_set(
        actor=None,
        application=console,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    url = _login_url(world, world.eu)
    client.post(url, {"username": "eu-admin"})
    from identity.services.loginflows import login_flow_reset

    login_flow_reset(actor=None, application=console, org=world.eu)  # now just [password]
    response = client.get(url)
    assert response.status_code == 200 and b'name="password"' in response.content
    assert not SSOSession.objects.exists()


def test_a_saved_flow_dies_with_its_sso_session(client: Client, world: World) -> None:
    from identity.services.sessions import sso_session_end

    app = _password_then_code_app(world)
    client.post(_login_url(world, world.root), {"username": "admin", "password": PASSWORD})
    url = _login_url(world, world.root, client_id=app.client_id)
    assert b"Step 2 of 2" in client.get(url).content
    session = SSOSession.objects.get(user=world.admin)
    sso_session_end(actor=None, session=session, reason="terminated")
    page = client.get(url)
    assert b"Step 1 of 2" in page.content and b"Signing in as" not in page.content


def test_email_codes_are_budgeted(client: Client, world: World, settings: Any) -> None:
    settings.ACTAS_EMAIL_OTP_MAX_SENDS = 2
    settings.ACTAS_LOGIN_MAX_FAILURES_PER_USER = 3
    app = _password_then_code_app(world)
    url = _login_url(world, world.root, client_id=app.client_id)
    client.post(url, {"username": "target", "password": PASSWORD, "client_id": app.client_id})
    for _ in range(2):
        client.post(url, {"authenticator": "email-otp", "action": "send", "client_id": app.client_id})
    third = client.post(url, {"authenticator": "email-otp", "action": "send", "client_id": app.client_id})
    assert b"Too many codes were requested" in third.content
    assert OutboxMessage.objects.filter(to_email="target@example.test").count() == 2
    # The newer code replaced the older one.
    assert EmailOTPChallenge.objects.filter(user=world.target, used_at__isnull=True).count() == 1
    for _ in range(3):
        client.post(url, {"authenticator": "email-otp", "code": "000000", "client_id": app.client_id})
    guess = client.post(url, {"authenticator": "email-otp", "code": "000000", "client_id": app.client_id})
    assert b"Too many failed sign-in attempts" in guess.content


def test_nul_in_client_id_is_not_an_error(client: Client, world: World) -> None:
    assert client.get("/t/acme/login/?client_id=a%00b").status_code == 200
    assert client.post("/t/acme/login/", {"client_id": "a\x00b"}).status_code == 400
