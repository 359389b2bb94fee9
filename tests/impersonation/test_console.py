"""Console → Impersonate User, and Console → Impersonations."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from identity.models import AuditEvent, SSOSession
from identity.services.applications import login_flow_set
from identity.services.roles import role_assign
from identity.services.users import user_set_flags
from impersonation.models import ImpersonationSession
from impersonation.selectors import active_impersonations
from tests.conftest import World, console_url, sign_in
from tests.identity.oauth_helpers import REDIRECT, authorize_url, basic, exchange, pkce_pair
from tests.impersonation.helpers import impersonation_app, impersonator_role, query


def _start(client: Client, world: World, reason: str = "Helping with ticket 7") -> Any:
    url = console_url(world.root, f"users/{world.target.pk}/impersonate/")
    return client.post(url, {"reason": reason})


def test_admin_impersonates_from_the_console_and_lands_in_my_account(
    admin_client: Client, world: World
) -> None:
    page = admin_client.get(console_url(world.root, f"users/{world.target.pk}/"))
    assert page.status_code == 200 and b"Impersonate User" in page.content and b"disabled" not in page.content
    confirm = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/"))
    assert confirm.status_code == 200 and b"Impersonate Target?" in confirm.content
    assert not ImpersonationSession.objects.exists()  # GET changes nothing
    key_before = admin_client.session.session_key
    response = _start(admin_client, world)
    assert response.status_code == 302 and response["Location"] == "/t/acme/myaccount/"
    assert admin_client.session.session_key != key_before  # cycled
    session = ImpersonationSession.objects.get()
    assert session.channel == "console" and session.impersonator_id == world.admin.pk
    assert session.subject_id == world.target.pk and session.reason == "Helping with ticket 7"
    assert session.application.system_key == "myaccount"
    assert session.sso_session.user_id == world.admin.pk and session.sso_session.ended_at is None
    start = AuditEvent.objects.get(action="impersonation-start")
    assert start.impersonator_id == world.admin.pk and start.data["channel"] == "console"
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


def test_confirmation_needs_a_reason_and_csrf(admin_client: Client, world: World) -> None:
    assert _start(admin_client, world, reason=" ").status_code == 400
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = admin_client.cookies
    assert (
        strict.post(
            console_url(world.root, f"users/{world.target.pk}/impersonate/"), {"reason": "x"}
        ).status_code
        == 403
    )
    assert not ImpersonationSession.objects.exists()


def test_hidden_for_yourself_and_for_users_shared_in(admin_client: Client, world: World) -> None:
    own = admin_client.get(console_url(world.root, f"users/{world.admin.pk}/"))
    assert b"Impersonate User" not in own.content
    shared = admin_client.get(console_url(world.eu, f"users/{world.target.pk}/"))
    assert shared.status_code == 200 and b"Impersonate User" not in shared.content
    assert (
        admin_client.get(console_url(world.root, f"users/{world.admin.pk}/impersonate/")).status_code == 404
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("locked", b"The account is locked"),
        ("disabled", b"The account is disabled"),
        ("protected", b"The account is protected"),
        ("dominance", b"holds permissions that you do not have"),
        ("login-flow", b"login flow asks for steps"),
    ],
)
def test_disabled_with_the_reason(admin_client: Client, world: World, setup: str, message: bytes) -> None:
    if setup in ("locked", "disabled", "protected"):
        flags = {
            "locked": {"is_locked": True},
            "disabled": {"is_active": False},
            "protected": {"is_protected": True},
        }
        user_set_flags(actor=None, user=world.target, **flags[setup])
    elif setup == "dominance":
        # target holds a permission admin does not: a business API scope.
        from identity.models import APIResource, Role, Scope

        resource = APIResource.objects.create(tenant=world.root, identifier="payroll", name="Payroll")
        scope = Scope.objects.create(tenant=world.root, resource=resource, name="payroll_approve")
        role = Role.objects.create(organization=world.root, name="Payroll approver", audience="organization")
        role.permissions.set([scope])
        role_assign(actor=None, role=role, org=world.root, user=world.target)
    else:
        login_flow_set(
            actor=None,
            application=world.system.myaccount,
            org=world.root,
            steps=[["BasicAuthenticator"], ["email-otp"]],
        )
    page = admin_client.get(console_url(world.root, f"users/{world.target.pk}/"))
    assert b"Impersonate User" in page.content and message in page.content
    assert (
        admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/")).status_code == 403
    )
    assert _start(admin_client, world).status_code == 403
    assert not ImpersonationSession.objects.exists()


def test_an_org_admin_without_the_role_or_my_account_sees_why(client: Client, world: World) -> None:
    sign_in(client, world.eu_admin)
    page = client.get(console_url(world.eu, f"users/{world.eu_user.pk}/"))
    assert b"My Account is not enabled for this organization" in page.content
    from identity.services.applications import application_share

    application_share(actor=None, application=world.system.myaccount, mode="all")
    page = client.get(console_url(world.eu, f"users/{world.eu_user.pk}/"))
    assert b"You need the Impersonator role" in page.content
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.eu_admin)
    page = client.get(console_url(world.eu, f"users/{world.eu_user.pk}/"))
    assert b"Impersonate User" in page.content and b"disabled" not in page.content
    response = client.post(
        console_url(world.eu, f"users/{world.eu_user.pk}/impersonate/"), {"reason": "EU ticket"}
    )
    assert response.status_code == 302 and response["Location"] == f"/t/acme/o/{world.eu.pk}/myaccount/"
    assert ImpersonationSession.objects.get().organization_id == world.eu.pk


def test_a_stale_sign_in_is_asked_again(admin_client: Client, world: World) -> None:
    session = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    SSOSession.objects.filter(pk=session.pk).update(auth_time=session.auth_time.replace(year=2020))
    response = admin_client.get(console_url(world.root, f"users/{world.target.pk}/impersonate/"))
    assert response.status_code == 302 and "reauth=1" in response["Location"]


def test_no_second_impersonation_from_an_impersonating_browser(admin_client: Client, world: World) -> None:
    from tests.conftest import make_user

    other = make_user(world.root, "other")
    _start(admin_client, world)
    page = admin_client.get(console_url(world.root, f"users/{other.pk}/"))
    assert b"You are impersonating someone already" in page.content


def test_impersonations_page_lists_and_force_ends(admin_client: Client, world: World) -> None:
    _start(admin_client, world)
    viewer = sign_in(Client(), world.admin)
    listing = viewer.get(console_url(world.root, "impersonations/"))
    assert listing.status_code == 200 and b"Helping with ticket 7" in listing.content
    session = ImpersonationSession.objects.get()
    detail = viewer.get(console_url(world.root, f"impersonations/{session.pk}/"))
    assert detail.status_code == 200 and b"impersonation-start" in detail.content
    assert viewer.get(console_url(world.root, f"impersonations/{session.pk}/end/")).status_code == 405
    ended = viewer.post(console_url(world.root, f"impersonations/{session.pk}/end/"))
    assert ended.status_code == 302
    session.refresh_from_db()
    assert session.end_reason == "force-ended" and session.ended_by_id == world.admin.pk
    assert session.sso_session.ended_at is not None
    # The impersonating browser is signed out.
    assert admin_client.get(console_url(world.root)).status_code == 302
    past = viewer.get(console_url(world.root, "impersonations/"))
    assert (
        b"Nobody is impersonating anyone right now." in past.content
        and b"Ended by an administrator" in past.content
    )


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


def test_end_from_the_banner_cycles_the_session_and_the_back_button_finds_nothing(
    admin_client: Client, world: World
) -> None:
    _start(admin_client, world)
    key = admin_client.session.session_key
    home = admin_client.get(console_url(world.root))
    assert b"End impersonation" in home.content
    ended = admin_client.post("/t/acme/impersonation/end")
    assert ended.status_code == 200 and b"Impersonation ended" in ended.content
    assert admin_client.session.session_key != key
    # Back to the Console page (the back button), or a second tab with the old cookies: signed out.
    assert admin_client.get(console_url(world.root)).status_code == 302
    second_tab = Client()
    second_tab.cookies["sessionid"] = key or ""
    assert second_tab.get(console_url(world.root)).status_code == 302


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
    assert _start(browser, world).status_code == 302
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
