"""Console → Impersonate User, and Console → Impersonations."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from oauth2_provider.models import AccessToken

from identity.audit.models import AuditEvent
from identity.models import OAuthAuthorization, SSOSession
from identity.services.loginflows import login_flow_set
from identity.services.roles import role_assign
from identity.services.users import user_set_flags
from impersonation.models import ImpersonationSession
from impersonation.selectors import active_impersonations
from organizations.services import organization_settings_update
from tests.conftest import World, console_url, sign_in
from tests.identity.oauth_helpers import REDIRECT, authorize_url, basic, exchange, pkce_pair
from tests.impersonation.helpers import impersonation_app, impersonator_role, query


def _start(client: Client, world: World, reason: str = "Helping with ticket 7") -> Any:
    url = console_url(world.root, f"users/{world.target.pk}/impersonate/")
    return client.post(url, {"reason": reason})


def _user_page(world: World, user: Any = None) -> str:
    return console_url(world.root, f"users/{(user or world.target).pk}/")


def test_admin_impersonates_from_the_console_and_the_tab_says_it_started(
    admin_client: Client, world: World
) -> None:
    page = admin_client.get(_user_page(world))
    assert page.status_code == 200 and b"Impersonate User" in page.content and b"disabled" not in page.content
    confirm = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/"))
    assert confirm.status_code == 200 and b"Impersonate Target?" in confirm.content
    assert b'target="_blank"' not in confirm.content  # the form answers in the same tab
    assert not ImpersonationSession.objects.exists()  # GET changes nothing
    key_before = admin_client.session.session_key
    response = _start(admin_client, world)
    assert response.status_code == 303 and response["Location"] == _user_page(world)
    assert admin_client.session.session_key != key_before  # cycled
    session = ImpersonationSession.objects.get()
    assert session.channel == "console" and session.impersonator_id == world.admin.pk
    assert session.subject_id == world.target.pk and session.reason == "Helping with ticket 7"
    assert session.application.system_key == "myaccount"
    assert session.sso_session.user_id == world.admin.pk and session.sso_session.ended_at is None
    start = AuditEvent.objects.get(action="impersonation-start")
    assert start.impersonator_id == world.admin.pk and start.data["channel"] == "console"
    # The Console tab says it started, and links to My Account as the user in a new tab.
    started = admin_client.get(response["Location"]).content.decode()
    assert "The impersonation of Target (target) has started." in started
    assert "You are impersonating target" in started
    assert (
        '<a role="button" href="/t/acme/myaccount/applications/" target="_blank" rel="noopener">' in started
    )
    assert "Open My Account as target" in started
    # The banner on every Console page now says whom the browser acts as.
    home = admin_client.get(console_url(world.root))
    assert b"You are impersonating" in home.content and b"End impersonation" in home.content


def test_the_bound_browser_signs_in_to_a_business_app_as_the_target(
    admin_client: Client, world: World
) -> None:
    app = impersonation_app(world)
    role_assign(actor=None, role=impersonator_role(), org=world.root, user=world.admin)
    _start(admin_client, world)
    verifier, challenge = pkce_pair()
    response = admin_client.get(authorize_url("pickup", challenge=challenge, scope="openid"))
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    body = exchange(admin_client, app, query(response["Location"])["code"], verifier).json()
    intro = admin_client.post(
        "/t/acme/oauth2/introspect",
        {"token": body["access_token"]},
        HTTP_AUTHORIZATION=basic("pickup", app.secret),
    ).json()
    assert intro["sub"] == str(world.target.pk) and intro["act"] == {"sub": str(world.admin.pk)}


@pytest.mark.parametrize("reason", ["", " ", "\u200b\u200b"])
def test_a_missing_reason_is_shown_under_the_field_in_the_same_tab(
    admin_client: Client, world: World, reason: str
) -> None:
    page = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/")).content.decode()
    assert 'Reason <span class="required">(required)</span>' in page and "required aria-required" in page
    response = _start(admin_client, world, reason=reason)
    assert response.status_code == 400
    text = response.content.decode()
    assert (
        '<ul class="field-errors" id="reason_error"><li>Give a reason for this impersonation: spaces and '
        in text
    )
    assert 'aria-describedby="reason_error reason_helptext"' in text and 'aria-invalid="true"' in text
    assert 'target="_blank"' not in text
    assert not ImpersonationSession.objects.exists()


def test_a_reason_is_optional_where_the_organization_says_so(admin_client: Client, world: World) -> None:
    organization_settings_update(actor=None, org=world.root, impersonation_reason_required=False)
    page = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/")).content.decode()
    assert 'Reason <span class="optional">(optional)</span>' in page and "aria-required" not in page
    assert _start(admin_client, world, reason="").status_code == 303


def test_confirmation_needs_csrf(admin_client: Client, world: World) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = admin_client.cookies
    assert (
        strict.post(
            console_url(world.root, f"users/{world.target.pk}/impersonate/"), {"reason": "x"}
        ).status_code
        == 403
    )
    assert not ImpersonationSession.objects.exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_the_user_is_said_to_be_emailed_only_when_the_email_is_sent(
    admin_client: Client, world: World, enabled: bool
) -> None:
    organization_settings_update(actor=None, org=world.root, impersonation_email_enabled=enabled)
    page = admin_client.get(_user_page(world)).content.decode()
    confirm = admin_client.get(
        console_url(world.root, f"users/{world.target.pk}/impersonate/")
    ).content.decode()
    assert (
        "target can see the impersonation in their account and is emailed when it starts." in page
    ) is enabled
    assert (
        "target can see this impersonation in their account and is emailed that it started." in confirm
    ) is enabled
    if not enabled:
        assert "target can see the impersonation in their account." in page
        assert "emailed" not in page and "emailed" not in confirm


def test_hidden_for_yourself_and_for_users_shared_in(admin_client: Client, world: World) -> None:
    own = admin_client.get(console_url(world.root, f"users/{world.admin.pk}/"))
    assert b"Impersonate User" not in own.content
    shared = admin_client.get(console_url(world.eu, f"users/{world.target.pk}/"))
    assert shared.status_code == 200 and b"Impersonate User" not in shared.content
    assert (
        admin_client.get(console_url(world.root, f"users/{world.admin.pk}/impersonate/")).status_code == 404
    )


# --- every disabled button says its rule, in these words -------------------------------------------


def _assert_refused(client: Client, org: Any, member: Any, wording: str, *, status: int = 403) -> None:
    """The user's page shows the disabled button with ``wording``; the confirmation page (GET)
    and a POST say the same on the Console's own page (never the bare 403 page); nothing starts."""
    page = html.unescape(client.get(console_url(org, f"users/{member.pk}/")).content.decode())
    assert "Impersonate User</button>" in page and "disabled" in page
    assert f"<p>{wording}</p>" in page, page.split('id="impersonate-why"', 1)[-1][:600]
    url = console_url(org, f"users/{member.pk}/impersonate/")
    for response in (client.get(url), client.post(url, {"reason": "Ticket 7"})):
        text = html.unescape(response.content.decode())
        assert response.status_code == status
        assert wording in text and "ask an administrator of this organization" not in text
        assert 'name="reason"' not in text  # no form to fill in
    assert ImpersonationSession.objects.filter(subject=member).count() == 0


def test_refused_locked(admin_client: Client, world: World) -> None:
    user_set_flags(actor=None, user=world.target, is_locked=True)
    _assert_refused(
        admin_client,
        world.root,
        world.target,
        "target's account is locked, and locked accounts cannot be impersonated. "
        "Unlock it first if you need to act as target.",
    )


def test_refused_disabled(admin_client: Client, world: World) -> None:
    user_set_flags(actor=None, user=world.target, is_active=False)
    _assert_refused(
        admin_client,
        world.root,
        world.target,
        "target's account is disabled, and disabled accounts cannot be impersonated. "
        "Enable it first if you need to act as target.",
    )


def test_refused_protected(admin_client: Client, world: World) -> None:
    user_set_flags(actor=None, user=world.target, is_protected=True)
    _assert_refused(
        admin_client,
        world.root,
        world.target,
        "target's account is protected: protected accounts are never impersonated, by anyone.",
    )


def test_refused_dominance_names_what_is_missing(admin_client: Client, world: World) -> None:
    from identity.models import APIResource, Role, Scope

    resource = APIResource.objects.create(tenant=world.root, identifier="payroll", name="Payroll")
    scope = Scope.objects.create(tenant=world.root, resource=resource, name="payroll_approve")
    role = Role.objects.create(organization=world.root, name="Payroll approver", audience="organization")
    role.permissions.set([scope])
    role_assign(actor=None, role=role, org=world.root, user=world.target)
    _assert_refused(
        admin_client,
        world.root,
        world.target,
        "You can impersonate only people whose permissions you hold yourself, and target holds "
        "some you do not: payroll_approve in Acme.",
    )


def test_refused_login_flow(admin_client: Client, world: World) -> None:
    login_flow_set(
        actor=None,
        application=world.system.myaccount,
        org=world.root,
        steps=[["BasicAuthenticator"], ["email-otp"]],
    )
    _assert_refused(
        admin_client,
        world.root,
        world.target,
        "Impersonating from the Console needs My Account's login flow in Acme to ask for nothing "
        "that the Console's login flow does not, and here it asks for more. Make them match under "
        "Console Settings → Login Flow or Applications → My Account → Login Flow.",
    )


def test_refused_my_account_not_enabled(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    _assert_refused(
        client,
        world.eu,
        world.eu_user,
        "Impersonating from the Console opens My Account, and My Account is not enabled for Acme EU. "
        "An administrator of Acme can share it with Acme EU under "
        "Applications → My Account → Shared Access.",
    )


def test_refused_a_member_without_the_impersonator_role(client: Client, world: World) -> None:
    from identity.services.applications import application_share

    application_share(actor=None, application=world.system.myaccount, mode="all")
    sign_in(client, world.eu_admin)
    _assert_refused(
        client,
        world.eu,
        world.eu_user,
        "You need the Impersonator role (audience My Account) in Acme EU to impersonate its users. "
        "An administrator of Acme EU can assign it to you under Roles → Impersonator.",
    )
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.eu_admin)
    page = client.get(console_url(world.eu, f"users/{world.eu_user.pk}/"))
    assert b"Impersonate User" in page.content and b"disabled" not in page.content
    response = client.post(
        console_url(world.eu, f"users/{world.eu_user.pk}/impersonate/"), {"reason": "EU ticket"}
    )
    assert response.status_code == 303 and response["Location"] == console_url(
        world.eu, f"users/{world.eu_user.pk}/"
    )
    assert ImpersonationSession.objects.get().organization_id == world.eu.pk
    started = client.get(response["Location"]).content.decode()
    assert f'href="/t/acme/o/{world.eu.pk}/myaccount/applications/" target="_blank"' in started


def test_refused_a_root_administrator_switched_into_a_child_organization(
    admin_client: Client, world: World
) -> None:
    """The root's administrator in Acme EU's Console is not a member of Acme EU, so its
    Impersonator role cannot be given to them there: the page says so and where to go."""
    from identity.services.applications import application_share

    application_share(actor=None, application=world.system.myaccount, mode="all")
    _assert_refused(
        admin_client,
        world.eu,
        world.eu_user,
        "Only members of Acme EU who hold its Impersonator role can impersonate its users. "
        "You are signed in from Acme and are not a member of Acme EU, so that role cannot be given "
        "to you here. Impersonate Acme EU's users from Acme EU's own Console, signed in with an "
        "account of Acme EU that has the role.",
    )
    page = html.unescape(
        admin_client.get(console_url(world.eu, f"users/{world.eu_user.pk}/")).content.decode()
    )
    sign_in_url = f"/t/acme/o/{world.eu.pk}/login/?next=%2Ft%2Facme%2Fo%2F{world.eu.pk}%2Fconsole%2F"
    assert f'<a href="{sign_in_url}">Sign in to Acme EU\'s Console</a>' in page


def test_refused_a_second_impersonation_from_an_impersonating_browser(
    admin_client: Client, world: World
) -> None:
    from tests.conftest import make_user

    other = make_user(world.root, "other")
    _start(admin_client, world)
    _assert_refused(
        admin_client,
        world.root,
        other,
        "This browser is already impersonating target, and it can impersonate one person at a time. "
        "End that impersonation first (End impersonation, in the banner at the top).",
        status=409,
    )
    confirm = html.unescape(
        admin_client.get(console_url(world.root, f"users/{other.pk}/impersonate/")).content.decode()
    )
    assert f'<a href="{_user_page(world)}">Go to target\'s page</a>' in confirm
    refused = AuditEvent.objects.filter(action="impersonation-refused").latest("seq")
    assert refused.data["code"] == "chained" and refused.data["stage"] == "console"


def test_the_impersonated_users_own_page_links_to_my_account_again(
    admin_client: Client, world: World
) -> None:
    _start(admin_client, world)
    again = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/"))
    assert again.status_code == 303 and again["Location"] == _user_page(world)
    assert ImpersonationSession.objects.count() == 1


def test_refused_when_the_impersonator_or_organization_is_inactive(world: World) -> None:
    """Not reachable from a Console page (a disabled organization's Console is closed), but
    the words are the rule's all the same."""
    from identity.console.shell import Console
    from impersonation.console import refusal_for

    console = Console(
        tenant=world.root, org=world.root, user=world.admin, scopes=frozenset(), path=[world.root]
    )
    assert refusal_for("impersonator-inactive", console=console, member=world.target).text == (
        "Acme or an organization above it is disabled, and nobody in a disabled organization can be "
        "impersonated. Enable it first."
    )
    user_set_flags(actor=None, user=world.admin, is_locked=True)
    world.admin.refresh_from_db()
    assert refusal_for("impersonator-inactive", console=console, member=world.target).text == (
        "Your account is disabled or locked, so you cannot impersonate anyone."
    )


def test_a_stale_sign_in_is_asked_again(admin_client: Client, world: World) -> None:
    session = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    SSOSession.objects.filter(pk=session.pk).update(auth_time=session.auth_time.replace(year=2020))
    response = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/"))
    assert response.status_code == 302 and "reauth=1" in response["Location"]


# --- ending: back where you started, still signed in as yourself --------------------------------------


def _impersonating_with_tokens(client: Client, world: World) -> tuple[ImpersonationSession, str, Any]:
    """Start from the Console, open My Account as the target (a token minted under the
    impersonation); returns the impersonation, the old session key and the My Account token."""
    from tests.myaccount.helpers import open_myaccount

    assert _start(client, world).status_code == 303
    page, _ = open_myaccount(client, "/t/acme/myaccount/")
    assert page.status_code == 200 and "You are acting as Target" in page.content.decode()
    session = ImpersonationSession.objects.get()
    token = AccessToken.objects.get(user=world.target)
    return session, client.session.session_key or "", token


def _assert_ended_and_still_signed_in(
    client: Client, world: World, session: ImpersonationSession, old_key: str, token: Any, response: Any
) -> None:
    assert response.status_code == 303 and response["Location"] == _user_page(world)
    landed = client.get(response["Location"])
    text = landed.content.decode()
    assert landed.status_code == 200
    assert (
        "You are no longer impersonating Target (target). Every token issued during the impersonation is "
        "revoked; you are still signed in as yourself." in text
    )
    assert "You are impersonating" not in text  # no banner
    assert "Impersonate User</a>" in text  # and a new one can start
    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == "ended"
    assert session.ended_by_id == world.admin.pk
    # Every token of the impersonation is dead; its sign-in ended.
    assert not AccessToken.objects.filter(pk=token.pk).exists()
    assert not OAuthAuthorization.objects.filter(
        impersonation_id=session.pk, revoked_at__isnull=True
    ).exists()
    assert session.sso_session.ended_at is not None
    # The browser has a sign-in of the administrator's own, no fresher than the old one.
    live = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    assert live.pk != session.sso_session_id and live.sid == client.session["actas.sso.sid"]
    assert live.auth_time == session.sso_session.auth_time and live.amr == session.sso_session.amr
    continued = AuditEvent.objects.get(action="login-continued")
    assert continued.actor_id == world.admin.pk and continued.target_id == str(live.pk)
    assert continued.data["previous"] == session.sso_session_id
    assert client.session.session_key != old_key
    # My Account no longer shows the target: it signs in again (as the administrator).
    again = client.get("/t/acme/myaccount/")
    assert again.status_code == 302 and again["Location"].startswith("/t/acme/oauth2/authorize")
    # A replayed old cookie resumes nothing.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert replay.get(console_url(world.root)).status_code == 302
    assert replay.post("/t/acme/impersonation/end").status_code == 302  # to sign in; nothing to end
    assert ImpersonationSession.objects.filter(ended_at__isnull=True).count() == 0


def test_end_from_the_banner_returns_to_the_start_still_signed_in(admin_client: Client, world: World) -> None:
    session, old_key, token = _impersonating_with_tokens(admin_client, world)
    home = admin_client.get(console_url(world.root))
    assert b"End impersonation" in home.content
    ended = admin_client.post("/t/acme/impersonation/end")
    _assert_ended_and_still_signed_in(admin_client, world, session, old_key, token, ended)


def test_end_from_impersonations_in_the_same_browser_returns_to_the_start(
    admin_client: Client, world: World
) -> None:
    session, old_key, token = _impersonating_with_tokens(admin_client, world)
    ended = admin_client.post(console_url(world.root, f"impersonations/{session.pk}/end/"))
    _assert_ended_and_still_signed_in(admin_client, world, session, old_key, token, ended)


def test_end_twice_continues_once(admin_client: Client, world: World) -> None:
    session, old_key, _token = _impersonating_with_tokens(admin_client, world)
    stale = Client()
    stale.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert admin_client.post("/t/acme/impersonation/end").status_code == 303
    assert stale.post("/t/acme/impersonation/end").status_code == 302  # the old cookie is gone
    assert AuditEvent.objects.filter(action="login-continued").count() == 1
    assert SSOSession.objects.filter(user=world.admin, ended_at__isnull=True).count() == 1


def test_a_force_end_by_another_administrator_signs_the_impersonator_out(
    admin_client: Client, world: World
) -> None:
    from tests.conftest import make_user

    second = make_user(world.root, "second-admin")
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=second)
    _start(admin_client, world)
    viewer = sign_in(Client(), second)
    listing = viewer.get(console_url(world.root, "impersonations/"))
    assert listing.status_code == 200 and b"Helping with ticket 7" in listing.content
    session = ImpersonationSession.objects.get()
    detail = viewer.get(console_url(world.root, f"impersonations/{session.pk}/"))
    assert detail.status_code == 200 and b"impersonation-start" in detail.content
    assert viewer.get(console_url(world.root, f"impersonations/{session.pk}/end/")).status_code == 405
    ended = viewer.post(console_url(world.root, f"impersonations/{session.pk}/end/"))
    assert ended.status_code == 303 and ended["Location"] == console_url(world.root, "impersonations/")
    session.refresh_from_db()
    assert session.end_reason == "force-ended" and session.ended_by_id == second.pk
    assert session.sso_session.ended_at is not None
    # The impersonating browser (someone else's) is signed out; the viewer is not.
    assert admin_client.get(console_url(world.root)).status_code == 302
    past = viewer.get(console_url(world.root, "impersonations/"))
    assert (
        b"Nobody is impersonating anyone right now." in past.content
        and b"Ended by an administrator" in past.content
    )
    assert not AuditEvent.objects.filter(action="login-continued").exists()


def test_the_administrators_own_end_from_another_browser_is_theirs(
    admin_client: Client, world: World
) -> None:
    _start(admin_client, world)
    elsewhere = sign_in(Client(), world.admin)
    session = ImpersonationSession.objects.get()
    assert elsewhere.post(console_url(world.root, f"impersonations/{session.pk}/end/")).status_code == 303
    session.refresh_from_db()
    assert session.end_reason == "ended" and session.ended_by_id == world.admin.pk
    assert elsewhere.get(console_url(world.root)).status_code == 200


def test_impersonations_of_other_branches_are_not_visible(client: Client, world: World) -> None:
    """eu-admin administers Acme EU (with internal_audit_view there): Acme's impersonation is
    neither listed nor reachable from Acme EU's Console."""
    admin = sign_in(Client(), world.admin)
    _start(admin, world)
    session = ImpersonationSession.objects.get()
    sign_in(client, world.eu_admin)
    listing = client.get(console_url(world.eu, "impersonations/"))
    assert listing.status_code == 200
    assert b"Helping with ticket 7" not in listing.content and b"Nobody is impersonating" in listing.content
    assert client.get(console_url(world.eu, f"impersonations/{session.pk}/")).status_code == 404
    assert client.post(console_url(world.eu, f"impersonations/{session.pk}/end/")).status_code == 404
    session.refresh_from_db()
    assert session.ended_at is None


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-01-01T00:00:00"]
)
def test_a_crafted_cursor_is_harmless(admin_client: Client, world: World, when: str) -> None:
    import base64
    import uuid

    cursor = base64.urlsafe_b64encode(f"{when}|{uuid.uuid4()}".encode()).decode().rstrip("=")
    assert admin_client.get(console_url(world.root, "impersonations/"), {"before": cursor}).status_code == 200


def test_an_administrator_who_loses_the_impersonator_role_is_stopped_at_once(
    client: Client, world: World
) -> None:
    """A Console impersonation (My Account) ends when the Impersonator role is taken away in
    the Console, not at the impersonator's next click."""
    impersonation_app(world)
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    browser = sign_in(Client(), world.impersonator)
    assert _start(browser, world).status_code == 303
    session = ImpersonationSession.objects.get()
    admin = sign_in(client, world.admin)
    page = admin.get(console_url(world.root, f"roles/{world.system.impersonator.pk}/"))
    assert page.status_code == 200
    removed = admin.post(
        console_url(world.root, f"roles/{world.system.impersonator.pk}/unassign/"),
        {"user_id": str(world.impersonator.pk)},
    )
    assert removed.status_code == 302, removed.content[:300]
    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == "policy"
    end = AuditEvent.objects.get(action="impersonation-end")
    assert end.actor_id == world.admin.pk and end.data["cause"] == "no-permission"
    assert session.sso_session.ended_at is not None
    assert active_impersonations(org=world.root) == []  # what Console → Impersonations lists as active


def test_impersonating_and_ending_again_and_again_never_extends_the_sign_in(
    admin_client: Client, world: World, settings: Any
) -> None:
    """End continues the administrator's sign-in under a new id, never past the moment the
    first sign-in would have ended, however many impersonations follow one another."""
    import datetime as dt

    from django.utils import timezone

    first = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    started = timezone.now() - dt.timedelta(seconds=settings.ACTAS_SSO_SESSION_MAX_AGE - 300)
    deadline = started + dt.timedelta(seconds=settings.ACTAS_SSO_SESSION_MAX_AGE)
    SSOSession.objects.filter(pk=first.pk).update(created_at=started, expires_at=deadline)
    for _ in range(3):
        assert _start(admin_client, world).status_code == 303
        assert admin_client.post("/t/acme/impersonation/end").status_code == 303
        live = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
        assert live.pk != first.pk and live.expires_at <= deadline, (live.expires_at, deadline)
