"""The My Account portal through the real endpoints: sign-in over OIDC, every section, and
what an impersonator's browser sees before and after the impersonation."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from oauth2_provider.models import AccessToken

from identity.audit.models import AuditEvent
from identity.models import OAuthAuthorization, RoleAssignment, SSOSession
from identity.notifications.models import OutboxMessage
from identity.services.roles import role_assign
from identity.services.sessions import sso_session_start
from identity.services.users import user_profile_update
from impersonation.models import ImpersonationSession
from myaccount.services import MODIFIED_VIA_IMPERSONATION as MODIFIED
from tests.conftest import PASSWORD, World, make_user, sign_in
from tests.identity.oauth_helpers import App
from tests.impersonation.helpers import impersonation_app
from tests.myaccount.helpers import (
    ROOT,
    follow,
    introspect_active,
    local,
    open_myaccount,
    org_base,
    share_myaccount,
    start_impersonation,
    twin,
)


@pytest.fixture
def pickup(world: World) -> App:
    app = impersonation_app(world, discoverable=True, access_url="http://127.0.0.1:8765/")
    return app


def _text(response: Any) -> str:
    return response.content.decode()


def _signed_in_page(client: Client, world: World, path: str = ROOT, *, user: Any = None) -> Any:
    sign_in(client, user or world.target)
    page, _chain = open_myaccount(client, path)
    assert page.status_code == 200, (page.status_code, _text(page)[:500])
    return page


def _is_sign_in_page(response: Any) -> bool:
    return response.status_code == 200 and response.templates[0].name == "identity/login.html"


# --- signing in ----------------------------------------------------------------------------------


def test_sign_in_runs_the_oidc_flow_and_lands_on_the_profile(client: Client, world: World) -> None:
    first = client.get(ROOT)
    assert first.status_code == 302
    assert first["Location"].startswith("/t/acme/oauth2/authorize?")
    assert (
        "code_challenge_method=S256" in first["Location"] and "client_id=acme-myaccount" in first["Location"]
    )
    login, chain = follow(client, first)
    assert _is_sign_in_page(login)
    login_url = chain[-1]
    assert "client_id=acme-myaccount" in login_url  # My Account's own login flow
    done = client.post(login_url, {"username": "target", "password": PASSWORD})
    page, chain = follow(client, done)
    assert chain[-2].startswith("/t/acme/myaccount/callback?code=")
    assert chain[-1] == ROOT
    assert page.status_code == 200
    assert "Signed in as Target (target)" in _text(page) and "<h1>Profile</h1>" in _text(page)
    authorization = OAuthAuthorization.objects.get(application__client_id="acme-myaccount")
    assert authorization.user_id == world.target.pk and authorization.impersonation_id is None
    # The identity shown is the token's; its state lives in its own namespace of the session.
    assert f"actas.myaccount:{world.root.pk}" in client.session


def test_a_deep_link_comes_back_to_the_page_asked_for(client: Client, world: World) -> None:
    page = _signed_in_page(client, world, f"{ROOT}security/")
    assert "<h1>Security</h1>" in _text(page)


def test_pages_are_never_cached(client: Client, world: World) -> None:
    page = _signed_in_page(client, world)
    assert "no-store" in page["Cache-Control"]


def test_unknown_tenant_or_organization_is_404(client: Client, world: World) -> None:
    assert client.get("/t/nope/myaccount/").status_code == 404
    assert client.get("/t/acme/o/00000000-0000-0000-0000-000000000000/myaccount/").status_code == 404
    assert client.get(f"/t/acme/o/{world.eu.pk}/myaccount/callback").status_code == 404


def test_callback_without_a_pending_sign_in_is_a_clear_page(client: Client, world: World) -> None:
    response = client.get(f"{ROOT}callback?code=abc&state=unknown")
    assert response.status_code == 400 and b"Open My Account" in response.content
    assert client.get(f"{ROOT}callback?code=abc&state=%00").status_code == 400
    assert client.get(f"{ROOT}callback?code={'x' * 5000}&state=s").status_code == 400


def test_a_refused_or_forged_code_does_not_sign_in(client: Client, world: World) -> None:
    sign_in(client, world.target)
    start = client.get(ROOT)
    state = dict(p.split("=", 1) for p in start["Location"].split("?", 1)[1].split("&"))["state"]
    response = client.get(f"{ROOT}callback?code=forged&state={state}")
    assert response.status_code == 400
    assert f"actas.myaccount:{world.root.pk}" not in client.session
    denied = client.get(ROOT)
    state = dict(p.split("=", 1) for p in denied["Location"].split("?", 1)[1].split("&"))["state"]
    assert client.get(f"{ROOT}callback?error=access_denied&state={state}").status_code == 400


# --- Profile -------------------------------------------------------------------------------------


def test_profile_edit_is_saved_and_audited(client: Client, world: World) -> None:
    _signed_in_page(client, world)
    response = client.post(ROOT, {"given_name": "Tara", "family_name": "Get", "email": "tara@example.test"})
    assert response.status_code == 303
    world.target.refresh_from_db()
    assert (world.target.given_name, world.target.family_name, world.target.email) == (
        "Tara",
        "Get",
        "tara@example.test",
    )
    event = AuditEvent.objects.get(action="user-profile-update")
    assert event.actor_id == world.target.pk and event.subject_id == world.target.pk
    assert event.impersonator_id is None
    assert event.data["changes"]["email"] == {"from": "target@example.test", "to": "tara@example.test"}
    page, _ = follow(client, response)
    assert "Your profile is saved." in _text(page) and "Signed in as Tara Get" in _text(page)


@pytest.mark.parametrize(
    "data",
    [
        {"given_name": "Ta\x00ra", "family_name": "", "email": ""},
        {"given_name": "x" * 151, "family_name": "", "email": ""},
        {"given_name": "Tara", "family_name": "", "email": "not-an-address"},
        {"given_name": "Tara", "family_name": "y" * 20_000, "email": ""},
    ],
)
def test_bad_profile_input_is_a_400_with_errors_in_place(
    client: Client, world: World, data: dict[str, str]
) -> None:
    _signed_in_page(client, world)
    response = client.post(ROOT, data)
    assert response.status_code == 400
    assert b'class="form-errors"' in response.content
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"
    assert not AuditEvent.objects.filter(action="user-profile-update").exists()


def test_no_change_without_a_my_account_sign_in(client: Client, world: World) -> None:
    sign_in(client, world.target)  # signed in to actas, but My Account has no token yet
    response = client.post(ROOT, {"given_name": "Mallory", "family_name": "", "email": ""})
    assert response.status_code == 303 and response["Location"] == ROOT
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"


def test_posts_are_csrf_protected(client: Client, world: World) -> None:
    _signed_in_page(client, world)
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = client.cookies
    response = forged.post(ROOT, {"given_name": "Mallory", "family_name": "", "email": ""})
    assert response.status_code == 403
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"


# --- Applications --------------------------------------------------------------------------------


def test_applications_lists_the_discoverable_ones(client: Client, world: World, pickup: App) -> None:
    from tests.identity.oauth_helpers import make_app

    make_app(world, client_id="hidden")  # not discoverable
    make_app(world, client_id="nourl", discoverable=True)  # no access URL
    page = _signed_in_page(client, world, f"{ROOT}applications/")
    text = _text(page)
    assert 'href="http://127.0.0.1:8765/"' in text and "App pickup" in text
    assert "App hidden" not in text and "App nourl" not in text
    assert "Console" not in text.split("<main", 1)[1].split("</main>")[0]


# --- Security ------------------------------------------------------------------------------------


def test_security_lists_sessions_and_signs_out_the_others_only(client: Client, world: World) -> None:
    laptop, phone = client, Client(HTTP_USER_AGENT="PhoneBrowser/1.0")
    _signed_in_page(phone, world)
    page = _signed_in_page(laptop, world, f"{ROOT}security/")
    text = _text(page)
    assert text.count("This session") == 1 and "PhoneBrowser/1.0" in text
    assert "Sign out everywhere else" in text
    sessions = SSOSession.objects.filter(user=world.target, ended_at__isnull=True)
    assert sessions.count() == 2
    phone_sid = phone.session["actas.sso.sid"]
    laptop_sid = laptop.session["actas.sso.sid"]

    response = laptop.post(f"{ROOT}security/sign-out-others")
    assert response.status_code == 303
    ended = SSOSession.objects.get(sid=phone_sid)
    assert ended.ended_at is not None and ended.end_reason == "signed-out-elsewhere"
    assert SSOSession.objects.get(sid=laptop_sid).ended_at is None
    # The phone's applications lost their tokens too.
    assert OAuthAuthorization.objects.get(sso_session=ended).revoked_at is not None
    back, _ = follow(phone, phone.get(ROOT))
    assert _is_sign_in_page(back)
    still, _ = open_myaccount(laptop, f"{ROOT}security/")
    assert still.status_code == 200 and "You are not signed in anywhere else." in _text(still)


def test_sign_out_everywhere_else_is_post_only(client: Client, world: World) -> None:
    _signed_in_page(client, world)
    assert client.get(f"{ROOT}security/sign-out-others").status_code == 405


# --- Access to my account ------------------------------------------------------------------------


def test_access_lists_a_past_impersonation_with_reason_apps_and_changes(
    client: Client, world: World, pickup: App
) -> None:
    support = Client()
    start_impersonation(support, world, pickup)
    acting, _ = open_myaccount(support)  # My Account gets tokens under the impersonation too
    assert acting.status_code == 200
    session = ImpersonationSession.objects.get()
    user_profile_update(
        actor=world.impersonator,
        user=world.target,
        impersonator=world.impersonator,
        given_name="Changed",
        family_name="",
        email=world.target.email,
    )
    assert support.post("/t/acme/impersonation/end").status_code == 200

    page = _signed_in_page(client, world, f"{ROOT}access/")
    text = _text(page)
    assert "Impersonator" in text and "(impersonator)" in text
    assert "“Ticket 42”" in text
    assert "App pickup" in text and "My Account" in text
    assert "user-profile-update" in text
    assert "impersonation-start" not in text  # the timeline itself, not a change
    assert "Ended by the impersonator" in text
    assert "End it now" not in text
    assert "Report misuse" in text
    assert session.started_at.strftime("%Y-%m-%d %H:%M") in text


def test_end_it_now_revokes_the_tokens_and_ends_it(client: Client, world: World, pickup: App) -> None:
    support = Client()
    body = start_impersonation(support, world, pickup)
    assert introspect_active(pickup, body["access_token"])
    page = _signed_in_page(client, world, f"{ROOT}access/")
    assert "End it now" in _text(page) and "Active now" in _text(page)
    session = ImpersonationSession.objects.get()

    response = client.post(f"{ROOT}access/{session.pk}/end")
    assert response.status_code == 303
    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == "ended-by-subject"
    assert session.ended_by_id == world.target.pk
    end = AuditEvent.objects.get(action="impersonation-end")
    assert end.actor_id == world.target.pk and end.data["reason"] == "ended-by-subject"
    assert end.impersonator_id == world.impersonator.pk and end.subject_id == world.target.pk
    assert not introspect_active(pickup, body["access_token"])
    assert session.sso_session.ended_at is not None  # the impersonator is signed out
    shown, _ = follow(client, response)
    assert "has ended" in _text(shown) and "Ended by the impersonated user" in _text(shown)
    # The target's own sign-in is untouched.
    again, _ = open_myaccount(client)
    assert again.status_code == 200 and "Signed in as Target" in _text(again)
    # Administrators see who ended it: the user, not "an administrator".
    from tests.conftest import console_url

    listing = _text(sign_in(Client(), world.admin).get(console_url(world.root, "impersonations/")))
    assert "Ended by the impersonated user" in listing and "Ended by an administrator" not in listing


def test_someone_elses_impersonation_cannot_be_ended_or_reported(
    client: Client, world: World, pickup: App
) -> None:
    start_impersonation(Client(), world, pickup)
    session = ImpersonationSession.objects.get()
    _signed_in_page(client, world, user=world.admin)
    assert client.post(f"{ROOT}access/{session.pk}/end").status_code == 404
    assert client.post(f"{ROOT}access/{session.pk}/report", {"note": "x"}).status_code == 404
    session.refresh_from_db()
    assert session.ended_at is None


def test_report_misuse_is_audited_and_emails_each_administrator(
    client: Client, world: World, pickup: App, django_capture_on_commit_callbacks: Any
) -> None:
    second = make_user(world.root, "second-admin")
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=second)
    start_impersonation(Client(), world, pickup)
    session = ImpersonationSession.objects.get()
    _signed_in_page(client, world, f"{ROOT}access/")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"{ROOT}access/{session.pk}/report", {"note": "I never asked for help & I'm worried"}
        )
    assert response.status_code == 303
    event = AuditEvent.objects.get(action="impersonation-misuse-reported")
    assert event.actor_id == world.target.pk and event.target_id == str(session.pk)
    assert event.data["note"] == "I never asked for help & I'm worried"
    assert event.data["impersonator"] == str(world.impersonator.pk)
    rows = OutboxMessage.objects.filter(kind="impersonation-misuse")
    assert sorted(rows.values_list("to_email", flat=True)) == [
        "admin@example.test",
        "second-admin@example.test",
    ]
    assert {m.to[0] for m in mail.outbox} == {"admin@example.test", "second-admin@example.test"}
    message = mail.outbox[0]
    assert "Target reported an impersonation" in message.subject
    assert "I never asked for help & I'm worried" in message.body  # plain text is not HTML-escaped
    assert "Impersonator (impersonator)" in message.body and "Ticket 42" in message.body

    shown, _ = follow(client, response)
    assert "2 administrators have been told" in _text(shown) and "Reported" in _text(shown)
    again = client.post(f"{ROOT}access/{session.pk}/report", {"note": "again"})
    assert again.status_code == 400 and "already reported" in _text(again)
    assert OutboxMessage.objects.filter(kind="impersonation-misuse").count() == 2


@pytest.mark.parametrize("note", ["bad\x00note", "x" * 2001])
def test_bad_report_input_is_a_400(client: Client, world: World, pickup: App, note: str) -> None:
    start_impersonation(Client(), world, pickup)
    session = ImpersonationSession.objects.get()
    _signed_in_page(client, world, f"{ROOT}access/")
    response = client.post(f"{ROOT}access/{session.pk}/report", {"note": note})
    assert response.status_code == 400 and b'class="form-errors"' in response.content
    assert b"<details open>" in response.content
    assert not AuditEvent.objects.filter(action="impersonation-misuse-reported").exists()


def test_access_is_paginated(client: Client, world: World, pickup: App) -> None:
    sso = sso_session_start(user=world.impersonator, org=world.root, amr=["BasicAuthenticator"])
    base = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for i in range(12):
        ImpersonationSession.objects.create(
            tenant=world.root,
            organization=world.root,
            impersonator=world.impersonator,
            subject=world.target,
            application=pickup.app,
            sso_session=sso,
            channel="console",
            reason=f"ticket-{i:02d}",
            started_at=base + dt.timedelta(hours=i),
            expires_at=base + dt.timedelta(hours=i, minutes=30),
            ended_at=base + dt.timedelta(hours=i, minutes=5),
            end_reason="ended",
        )
    first = _text(_signed_in_page(client, world, f"{ROOT}access/"))
    assert "ticket-11" in first and "ticket-02" in first and "ticket-01" not in first
    assert "Older impersonations" in first
    older = first.split('href="?before=', 1)[1].split('"', 1)[0]
    second = client.get(f"{ROOT}access/?before={older}")
    assert second.status_code == 200
    text = _text(second)
    assert "ticket-01" in text and "ticket-00" in text and "ticket-02" not in text
    assert "Older impersonations" not in text
    assert client.get(f"{ROOT}access/?before=%00").status_code == 400
    assert client.get(f"{ROOT}access/?before=not-a-cursor").status_code == 400


# --- while impersonated --------------------------------------------------------------------------


def test_while_impersonated_only_the_applications_the_impersonator_may_enter(
    client: Client, world: World, pickup: App
) -> None:
    from tests.identity.oauth_helpers import make_app

    # Discoverable and allows impersonation, but the impersonator holds no role on it.
    impersonation_app(world, client_id="payroll", discoverable=True, access_url="https://payroll.example/")
    RoleAssignment.objects.filter(role__name="payroll impersonator").delete()
    # Discoverable, but not authorized for User Impersonation.
    make_app(world, client_id="wiki", discoverable=True, access_url="https://wiki.example/")

    start_impersonation(client, world, pickup)
    page, chain = open_myaccount(client, f"{ROOT}applications/")
    assert chain[-1] == f"{ROOT}applications/"
    text = _text(page)
    assert "You are acting as Target (target)" in text
    assert "You are impersonating Target" in text  # the banner, with End impersonation
    assert "End impersonation" in text
    main = text.split('aria-label="My Account sections"', 1)[1]
    assert "Applications</a>" in main and "Profile</a>" in main and "Security</a>" in main
    assert "Access to my account</a>" not in main
    assert 'href="http://127.0.0.1:8765/"' in text
    assert "payroll.example" not in text and "wiki.example" not in text
    assert list(page.context["launchable"]) and [
        i.application.client_id for i in page.context["launchable"]
    ] == ["pickup"]
    authorization = OAuthAuthorization.objects.get(application__client_id="acme-myaccount")
    assert authorization.user_id == world.target.pk and authorization.impersonator_id == world.impersonator.pk


def test_while_impersonated_access_and_every_other_change_are_closed(
    client: Client, world: World, pickup: App
) -> None:
    start_impersonation(client, world, pickup)
    open_myaccount(client)
    response = client.get(f"{ROOT}access/")
    assert response.status_code == 302 and response["Location"] == f"{ROOT}applications/"
    session = ImpersonationSession.objects.get()
    assert client.post(f"{ROOT}security/sign-out-others").status_code == 403
    assert client.post(f"{ROOT}access/{session.pk}/end").status_code == 403
    assert client.post(f"{ROOT}access/{session.pk}/report", {"note": "x"}).status_code == 403
    session.refresh_from_db()
    assert session.ended_at is None
    assert not AuditEvent.objects.filter(action="impersonation-misuse-reported").exists()


def _impersonating_from_the_console(admin_client: Client, world: World, *, read_only: bool = False) -> Any:
    """admin impersonates target from the Console and opens My Account's Profile as target."""
    from tests.conftest import console_url

    data = {"reason": "T-9", **({"read_only": "on"} if read_only else {})}
    started = admin_client.post(console_url(world.root, f"users/{world.target.pk}/impersonate/"), data)
    assert started.status_code == 303
    page, _ = open_myaccount(admin_client, ROOT)
    assert page.status_code == 200 and "You are acting as Target (target)" in _text(page)
    return page


def test_while_impersonating_the_profile_is_the_users_and_can_be_edited(
    admin_client: Client, world: World
) -> None:
    page = _impersonating_from_the_console(admin_client, world)
    text = html.unescape(_text(page))
    assert "<h1>Profile</h1>" in text and "Target's account in Acme." in text
    assert "Edit Target's profile" in text and 'value="target@example.test"' in text
    assert (
        "Target's email address cannot be changed while you are impersonating them." in text
        and "readonly" in text
    )
    response = admin_client.post(
        ROOT, {"given_name": "Tara", "family_name": "Get", "email": "target@example.test"}
    )
    assert response.status_code == 303 and response["Location"] == ROOT
    world.target.refresh_from_db()
    assert (world.target.given_name, world.target.family_name) == ("Tara", "Get")
    shown, _ = follow(admin_client, response)
    assert "Tara Get's profile is saved." in html.unescape(_text(shown))
    session = ImpersonationSession.objects.get()
    # The change itself, by the impersonator on the user's behalf...
    update = AuditEvent.objects.get(action="user-profile-update")
    assert update.actor_id == world.admin.pk and update.impersonator_id == world.admin.pk
    assert update.subject_id == world.target.pk
    # ...and the seed's audit example, in the same shape as the APIs write it.
    event = AuditEvent.objects.get(action="resource-modification-via-impersonation")
    assert event.outcome == "success" and event.seq == update.seq + 1  # the same transaction, in turn
    assert event.actor_id == world.admin.pk and event.impersonator_id == world.admin.pk
    assert event.subject_id == world.target.pk and event.client_id == "acme-myaccount"
    assert event.data == {
        "subject": str(world.target.pk),
        "impersonator": str(world.admin.pk),
        "ResourcePath": ROOT,
        "httpMethod": "POST",
        "clientId": "acme-myaccount",
        "scope": event.scopes,
        "impersonationId": str(session.pk),
        "status": 303,
    }
    assert "openid" in event.scopes.split()


def test_while_impersonating_saving_nothing_new_records_no_modification(
    admin_client: Client, world: World
) -> None:
    _impersonating_from_the_console(admin_client, world)
    same = {"given_name": "Target", "family_name": "", "email": "target@example.test"}
    assert admin_client.post(ROOT, same).status_code == 303
    assert not AuditEvent.objects.filter(action__in=["user-profile-update", MODIFIED]).exists()


def test_while_impersonating_the_email_address_stays(admin_client: Client, world: World) -> None:
    _impersonating_from_the_console(admin_client, world)
    response = admin_client.post(ROOT, {"given_name": "X", "family_name": "", "email": "evil@example.test"})
    assert response.status_code == 400
    assert "The email address cannot be changed while someone is impersonating this user." in _text(response)
    world.target.refresh_from_db()
    assert world.target.email == "target@example.test" and world.target.given_name == "Target"
    refused = AuditEvent.objects.get(action="user-profile-update-refused")
    assert refused.impersonator_id == world.admin.pk and refused.data["code"] == "email-while-impersonating"
    failed = AuditEvent.objects.get(action=MODIFIED)
    assert failed.outcome == "failure" and failed.data["status"] == 400
    assert failed.impersonator_id == world.admin.pk
    assert not AuditEvent.objects.filter(action="user-profile-update").exists()


def test_a_read_only_impersonation_shows_the_profile_read_only_and_says_why(
    admin_client: Client, world: World
) -> None:
    page = _impersonating_from_the_console(admin_client, world, read_only=True)
    text = html.unescape(_text(page))
    assert (
        "You started this impersonation read-only, so you can look at Target's profile but not change "
        "it. To change it, end this impersonation and start a new one without Read-only." in text
    )
    assert "Save profile" not in text and 'name="given_name"' not in text
    assert "target@example.test" in text  # the facts are shown
    response = admin_client.post(ROOT, {"given_name": "X", "family_name": "", "email": "target@example.test"})
    assert response.status_code == 403 and "You started this impersonation read-only" in _text(response)
    world.target.refresh_from_db()
    assert world.target.given_name == "Target"
    failed = AuditEvent.objects.get(action=MODIFIED)
    assert failed.outcome == "failure" and failed.data["status"] == 403
    assert failed.data["error"] == "This impersonation is read-only: nothing can be changed."
    assert not AuditEvent.objects.filter(action="user-profile-update").exists()


def test_while_impersonating_security_is_read_only(admin_client: Client, world: World) -> None:
    _impersonating_from_the_console(admin_client, world)
    laptop = Client(HTTP_USER_AGENT="TargetLaptop/2.0")
    sign_in(laptop, world.target)
    page = admin_client.get(f"{ROOT}security/")
    text = html.unescape(_text(page))
    assert page.status_code == 200 and "Where Target's account is signed in right now." in text
    assert "TargetLaptop/2.0" in text
    assert (
        "While you impersonate Target this page is read-only: their sessions can be seen here, but only "
        "Target can sign them out." in text
    )
    assert "Sign out everywhere else" not in text and "This session" not in text
    assert admin_client.post(f"{ROOT}security/sign-out-others").status_code == 403
    assert SSOSession.objects.filter(user=world.target, ended_at__isnull=True).count() == 1


def test_a_token_of_the_impersonators_own_never_shows_once_impersonating(
    client: Client, world: World, pickup: App
) -> None:
    own = _signed_in_page(client, world, user=world.impersonator)
    assert "Signed in as Impersonator" in _text(own)
    start_impersonation(client, world, pickup, signed_in=True)
    page, chain = open_myaccount(client)
    assert any(step.startswith("/t/acme/oauth2/authorize") for step in chain)  # signed in again
    assert "You are acting as Target" in _text(page) and "Signed in as Impersonator" not in _text(page)


@pytest.mark.parametrize("how", ["banner", "sign-out"])
def test_after_the_end_the_impersonators_browser_never_sees_the_target(
    client: Client, world: World, pickup: App, how: str
) -> None:
    start_impersonation(client, world, pickup)
    page, _ = open_myaccount(client)
    assert "Target" in _text(page)
    second_tab = twin(client)
    if how == "banner":
        ended = client.post("/t/acme/impersonation/end")
        assert ended.status_code == 200 and "This browser is still signed in as you, impersonator." in _text(
            ended
        )
    else:
        assert client.post("/t/acme/logout/").status_code == 302
    assert ImpersonationSession.objects.get().ended_at is not None
    for browser in (client, second_tab):
        for path in (ROOT, f"{ROOT}applications/"):
            reload = browser.get(path)
            if how == "banner":
                # Still signed in: My Account signs in again, as the impersonator's own.
                landed, _ = follow(browser, reload)
                assert "Signed in as Impersonator (impersonator)" in _text(landed)
            else:
                assert reload.status_code == 302 and local(reload["Location"]).startswith(
                    "/t/acme/oauth2/authorize"
                )
                landed, _ = follow(browser, reload)
                assert _is_sign_in_page(landed)
            assert "acting as" not in _text(landed) and "Target (target)" not in _text(landed)
    if how == "banner":  # the first reload after the End had to sign My Account in again
        assert OAuthAuthorization.objects.filter(
            application__client_id="acme-myaccount", user=world.impersonator, impersonation_id__isnull=True
        ).exists()
    assert not AccessToken.objects.filter(user=world.target).exists()


def test_after_the_time_cap_the_target_is_gone(client: Client, world: World, pickup: App) -> None:
    start_impersonation(client, world, pickup)
    page, _ = open_myaccount(client)
    assert "You are acting as Target" in _text(page)
    second_tab = twin(client)
    session = ImpersonationSession.objects.get()
    with time_machine.travel(session.expires_at + dt.timedelta(seconds=1), tick=False):
        for browser in (client, second_tab):
            reload = browser.get(f"{ROOT}applications/")
            assert reload.status_code == 302
            landed, _ = follow(browser, reload)
            assert _is_sign_in_page(landed) and "acting as" not in _text(landed)


# --- child organizations -------------------------------------------------------------------------


def test_child_org_my_account_works_once_shared(client: Client, world: World) -> None:
    share_myaccount(world, [world.eu])
    base = org_base(world.eu)
    first = client.get(base)
    assert first["Location"].startswith(f"/t/acme/o/{world.eu.pk}/oauth2/authorize?")
    sign_in(client, world.eu_user)
    page, chain = open_myaccount(client, base)
    assert chain[-2].startswith(f"{ROOT}callback?")  # one registered callback for every org
    assert chain[-1] == base
    assert page.status_code == 200 and "Signed in as Eu-User (eu-user)" in _text(page)
    assert "Organization <strong>Acme EU</strong>" in _text(page)
    assert f"actas.myaccount:{world.eu.pk}" in client.session
    authorization = OAuthAuthorization.objects.get(application__client_id="acme-myaccount")
    assert authorization.organization_id == world.eu.pk
    # Its pages link within the organization's My Account.
    assert f'href="{base}security/"' in _text(page)
    security = client.get(f"{base}security/")
    assert security.status_code == 200 and "This session" in _text(security)


def test_child_org_my_account_is_404_when_not_shared(client: Client, world: World) -> None:
    share_myaccount(world, [world.eu])
    response = client.get(org_base(world.us))
    assert response.status_code == 404 and b"My Account is not available here" in response.content
    assert "Location" not in response
    sign_in(client, world.other_org_user)
    assert client.get(org_base(world.us)).status_code == 404


def test_my_account_shared_with_all_serves_grandchildren(client: Client, world: World) -> None:
    share_myaccount(world)
    sign_in(client, world.sales_user)
    page, _ = open_myaccount(client, org_base(world.sales))
    assert page.status_code == 200 and "Signed in as Sales-User" in _text(page)


def test_a_disabled_my_account_org_is_not_served(client: Client, world: World) -> None:
    from organizations.services import organization_set_status

    share_myaccount(world)
    organization_set_status(actor=None, org=world.us, status="disabled")
    assert client.get(org_base(world.us)).status_code == 404


def test_the_consoles_impersonate_button_opens_my_account_as_the_target(
    admin_client: Client, world: World, pickup: App
) -> None:
    from tests.conftest import console_url
    from tests.impersonation.helpers import impersonator_role

    role_assign(actor=None, role=impersonator_role(), org=world.root, user=world.admin)
    started = admin_client.post(
        console_url(world.root, f"users/{world.target.pk}/impersonate/"), {"reason": "T-9"}
    )
    assert started.status_code == 303
    console_page = admin_client.get(started["Location"])
    assert f'href="{ROOT}applications/" target="_blank"' in _text(console_page)
    page, chain = open_myaccount(admin_client, f"{ROOT}applications/")
    assert chain[-1] == f"{ROOT}applications/"
    text = _text(page)
    assert "You are acting as Target (target)" in text and 'href="http://127.0.0.1:8765/"' in text
    assert (
        OAuthAuthorization.objects.get(application__client_id="acme-myaccount").impersonator_id
        == world.admin.pk
    )


# --- launching an application from an organization -----------------------------------------------


def test_an_organizations_applications_launch_with_its_org_id(
    client: Client, world: World, pickup: App
) -> None:
    """From Acme EU's My Account an application's link is its access URL with orgId=<Acme EU>,
    so it signs in at Acme EU; an access URL's own query is kept, an orgId in it replaced."""
    from tests.identity.oauth_helpers import make_app

    share_myaccount(world, [world.eu])
    make_app(
        world,
        client_id="wiki",
        discoverable=True,
        access_url="https://wiki.example/start?lang=en&orgId=stale#top",
    )
    sign_in(client, world.eu_user)
    page, _ = open_myaccount(client, f"{org_base(world.eu)}applications/")
    text = _text(page)
    assert page.status_code == 200 and "Each signs you in to Acme EU." in text
    assert f'href="http://127.0.0.1:8765/?orgId={world.eu.pk}"' in text
    assert f'href="https://wiki.example/start?lang=en&amp;orgId={world.eu.pk}#top"' in text
    assert "stale" not in text


def test_an_impersonation_in_an_organization_launches_its_applications_there(
    admin_client: Client, world: World, pickup: App
) -> None:
    """eu-admin impersonates eu-user from Acme EU's Console: My Account of Acme EU lists Pickup
    with Acme EU's orgId; the root's My Account links stay the plain access URL."""
    from identity.models import Role
    from tests.conftest import console_url

    share_myaccount(world, [world.eu])
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.eu_admin)
    role_assign(
        actor=None, role=Role.objects.get(name="pickup impersonator"), org=world.eu, user=world.eu_admin
    )
    browser = sign_in(Client(), world.eu_admin)
    started = browser.post(
        console_url(world.eu, f"users/{world.eu_user.pk}/impersonate/"), {"reason": "T-14"}
    )
    assert started.status_code in (302, 303), started.content[:300]
    # The Console opens My Account of Acme EU as the user (a link, in a new tab).
    page, _ = open_myaccount(browser, f"{org_base(world.eu)}applications/")
    text = _text(page)
    assert page.status_code == 200 and "You are acting as Eu-User (eu-user)" in text
    assert "Each opens signed in as Eu-User in Acme EU" in text
    assert [item.url for item in page.context["launchable"]] == [
        f"http://127.0.0.1:8765/?orgId={world.eu.pk}"
    ]
    assert f'href="http://127.0.0.1:8765/?orgId={world.eu.pk}"' in text

    # The root's My Account (admin, not impersonating): the access URL as registered.
    root, _ = open_myaccount(admin_client, f"{ROOT}applications/")
    assert 'href="http://127.0.0.1:8765/"' in _text(root) and "orgId" not in _text(root)
