"""Seed 000, "User impersonation via Console", walked in the document's order (issue 14).

Each test is one procedure of the document, from a fresh demo tenant (``seed_demo``, with
the real Pickup serving on a free port), clicked in Chromium as the person the procedure is
for: the only addresses typed are the Console's and My Account's. A procedure that needs an
earlier one replays it through the same steps (``tests.e2e.walkthrough``) without screenshots.
Screenshots: ``test-artifacts/e2e/<test name>/``.

The people (DESIGN §8): ``admin`` administers Acme; ``bob`` becomes an impersonator in the
root procedures and impersonates ``alice``; in Acme EU the administrator creates ``frank``, a
support agent who impersonates ``erin``. The business application of "Configure business
applications" is a new one, "Returns", run by the Pickup program with the client id and
secret the Console shows once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from demo.pickup.app import Config
from demo.pickup.app import Pickup as PickupProgram
from identity.audit.models import AuditEvent
from identity.models import Application, OAuthAuthorization, Role, User
from identity.notifications.models import OutboxMessage
from identity.selectors.roles import user_roles_in_org
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from tests.conftest import PASSWORD
from tests.demo.helpers import pickup_server, served_pickup
from tests.e2e.walkthrough import (
    Shot,
    app_tab,
    assign_role,
    console_address,
    console_sign_in,
    end_from_banner,
    flash,
    grant_console_impersonation,
    impersonate,
    nav,
    no_shot,
    open_app,
    open_user,
    sign_in_at,
    switch_to_console_of,
)

pytestmark = pytest.mark.e2e

REASON = "Ticket 2207: Alice cannot see her order history"
EU_REASON = "Ticket 2231: Erin's pickup slot is missing"


@pytest.fixture
def demo(live_url: str) -> Iterator[str]:
    """A fresh demo tenant and Pickup (client ``pickup``) serving: Pickup's URL."""
    with served_pickup(live_url, password=PASSWORD) as url:
        yield url


def user(username: str, org: str = "acme") -> User:
    return User.objects.get(username=username, organization__handle=org, organization__tenant__handle="acme")


def org(handle: str) -> Organization:
    return Organization.objects.get(handle=handle, tenant__handle="acme")


def emails_to(address: str) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(to_email=address, kind="impersonation-started"))


# --- the procedures, as steps a later procedure replays ----------------------------------------


def make_bob_an_impersonator(page: Any, base: str, *, shot: Shot = no_shot) -> None:
    """Step 1: admin, in the root Console, gives bob the Impersonator role and administration."""
    console_sign_in(page, console_address(base), "admin", org_name="Acme", shot=shot)
    shot(page, "console-overview")
    grant_console_impersonation(page, "bob", "Acme", shot=shot)


def make_frank_an_impersonator_in_acme_eu(page: Any, base: str, *, shot: Shot = no_shot) -> str:
    """Organization step 2: admin switches to Acme EU's Console, creates frank (the support
    agent), gives him the Impersonator role, administration, and Pickup's impersonation role
    there. Returns Acme EU's Console address, read off its overview."""
    console_sign_in(page, console_address(base), "admin", org_name="Acme")
    address = switch_to_console_of(page, "Acme EU")
    shot(page, "acme-eu-console-overview-with-its-addresses")
    nav(page, "Users")
    page.get_by_role("button", name="Create user").click()
    page.get_by_label("Username", exact=True).fill("frank")
    page.get_by_label("Password", exact=True).fill("Support-desk-2207!")
    page.get_by_label("Email").fill("frank@acme.example")
    page.get_by_label("Given name").fill("Frank")
    page.get_by_label("Family name").fill("Fischer")
    shot(page, "acme-eu-create-frank")
    page.get_by_role("button", name="Create user").click()
    flash(page, "User frank created.")
    grant_console_impersonation(page, "frank", "Acme EU", shot=shot)
    # Pickup is shared with every organization, with its role: in Acme EU frank gets it too,
    # so that he may enter Pickup as the people he impersonates there.
    assign_role(page, "Pickup Impersonator", "frank", shot=shot)
    assert page.get_by_text("Application: Pickup").is_visible()
    shot(page, "acme-eu-pickup-impersonator-assigned")
    return address


# --- Step 1: Assign permissions to the impersonator ---------------------------------------------


def test_01_assign_permissions_to_the_impersonator(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    make_bob_an_impersonator(page, live_url, shot=shot)
    assert {r.name for r in user_roles_in_org(user=user("bob"), org=org("acme"))} == {
        "Administrator",
        "Impersonator",
    }
    assigned = AuditEvent.objects.filter(action="role-assign", subject_id=user("bob").pk)
    assert sorted(assigned.values_list("data__role", flat=True)) == ["Administrator", "Impersonator"]
    assert set(assigned.values_list("actor_id", flat=True)) == {user("admin").pk}

    # bob, with his own credentials: Users → alice, and Impersonate User is there, enabled.
    bob = new_page()
    console_sign_in(bob, console_address(live_url), "bob", org_name="Acme")
    open_user(bob, "alice")
    action = bob.get_by_role("region", name="Impersonate User")
    start = action.get_by_role("button", name="Impersonate User")
    assert start.is_enabled() and start.get_attribute("href", timeout=1000)
    shot(bob, "bob-sees-impersonate-user-on-alices-page")


# --- Step 2: Impersonate the user ---------------------------------------------------------------


def test_02_impersonate_the_user(live_url: str, demo: str, page: Any, new_page: Any, shot: Any) -> None:
    make_bob_an_impersonator(new_page(), live_url)
    alice, bob = user("alice"), user("bob")

    # 1. bob logs into the Console with his own credentials.
    console_sign_in(page, console_address(live_url), "bob", org_name="Acme", shot=shot)
    # 2. User management → Users → alice.
    nav(page, "Users")
    shot(page, "users")
    open_user(page, "alice")
    shot(page, "alices-page")
    # 3. Impersonate User; 4. My Account as alice, in a new tab.
    tab = impersonate(page, "alice", alice.display_name, REASON, shot=shot)
    banner = tab.get_by_role("region", name="Impersonation in progress")
    banner.get_by_text(f"You are impersonating {alice.display_name}").wait_for()
    assert f"Reason: “{REASON}”" in banner.inner_text()
    assert tab.get_by_text(f"You are acting as {alice.display_name} (alice)").is_visible()
    sections = tab.get_by_role("navigation", name="My Account sections").get_by_role("link")
    assert sections.all_inner_texts() == ["Profile", "Applications", "Security"]
    # 5. The applications bob may enter as alice: none yet — Pickup needs its own role
    # ("Configure business applications for impersonation").
    assert tab.get_by_text(f"There are no applications you may enter as {alice.display_name}.").is_visible()
    shot(tab, "myaccount-as-alice")

    session = ImpersonationSession.objects.get(ended_at__isnull=True)
    assert (session.impersonator_id, session.subject_id, session.reason) == (bob.pk, alice.pk, REASON)
    assert len(emails_to(alice.email)) == 1  # the user is told
    started = AuditEvent.objects.get(action="impersonation-start")
    assert (started.actor_id, started.subject_id) == (bob.pk, alice.pk)

    # End impersonation (the banner): back on alice's Console page, bob still signed in.
    end_from_banner(tab, alice.display_name, "alice")
    assert tab.get_by_role("heading", name=alice.display_name, level=1).is_visible()
    assert not tab.get_by_role("region", name="Impersonation in progress").count()
    assert tab.get_by_role("navigation", name="Console sections").is_visible()
    shot(tab, "ended-back-on-alices-page-as-bob")
    session.refresh_from_db()
    assert session.ended_at is not None and session.ended_by_id == bob.pk


# --- Impersonate users in an organization ---------------------------------------------------------


def test_03_share_my_account_with_the_organization(live_url: str, demo: str, page: Any, shot: Any) -> None:
    """Step 1: Applications → My Account → Shared Access → only the selected organizations."""
    console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
    open_app(page, "My Account")
    app_tab(page, "Shared Access")
    shot(page, "my-account-shared-access")
    page.get_by_label("Share with only selected organizations").check()
    page.get_by_label("Acme EU", exact=True).check()
    shot(page, "my-account-share-with-acme-eu")
    page.get_by_role("button", name="Update").click()
    flash(page, "Shared access saved.")
    shot(page, "my-account-shared-with-acme-eu")
    myaccount = Application.objects.get(organization=org("acme"), name="My Account")
    assert myaccount.shared_access == Application.SharedAccess.SELECTED
    assert set(myaccount.shares.values_list("organization__handle", flat=True)) == {"acme-eu"}


def test_04_assign_users_with_impersonation_access_in_the_organization(
    live_url: str, demo: str, page: Any, shot: Any
) -> None:
    """Step 2: switch to Acme EU's Console; a new support agent, frank, gets the Impersonator
    role and administration there."""
    address = make_frank_an_impersonator_in_acme_eu(page, live_url, shot=shot)
    eu = org("acme-eu")
    assert address == f"{live_url}/t/acme/o/{eu.pk}/console/"
    frank = user("frank", "acme-eu")
    assert {r.name for r in user_roles_in_org(user=frank, org=eu)} == {
        "Administrator",
        "Impersonator",
        "Pickup Impersonator",
    }


def test_05_perform_impersonation_in_the_organization_and_enter_pickup_as_erin(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    """Step 3: frank logs in to Acme EU's Console, Users → erin → Impersonate User; in Acme EU's
    My Account as erin he launches Pickup, which signs in at Acme EU as erin with ``act``."""
    address = make_frank_an_impersonator_in_acme_eu(new_page(), live_url)
    eu, erin, frank = org("acme-eu"), user("erin", "acme-eu"), user("frank", "acme-eu")

    page.goto(address)
    page.get_by_role("heading", name="Sign in to Acme EU").wait_for()
    page.get_by_label("Username", exact=True).fill("frank")
    page.get_by_label("Password", exact=True).fill("Support-desk-2207!")
    shot(page, "acme-eu-sign-in-as-frank")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Acme EU", level=1).wait_for()
    nav(page, "Users")
    # alice is shared in from Acme: the documented limitation, no Impersonate User for her.
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="alice", exact=True))
    assert row.get_by_text("Shared from Acme", exact=True).is_visible()
    shot(page, "acme-eu-users")
    open_user(page, "alice")
    assert not page.get_by_role("region", name="Impersonate User").count()
    open_user(page, "erin")
    tab = impersonate(page, "erin", erin.display_name, EU_REASON, shot=shot)
    assert urlsplit(tab.url).path == f"/t/acme/o/{eu.pk}/myaccount/applications/"
    banner = tab.get_by_role("region", name="Impersonation in progress")
    assert f"({erin.username}, Acme EU)" in banner.inner_text()

    launchable = tab.get_by_role("list", name=f"Applications you may enter as {erin.display_name}")
    assert launchable.get_by_role("link").all_inner_texts() == ["Pickup"]
    shot(tab, "acme-eu-myaccount-as-erin")
    visited: list[str] = []
    tab.on("request", lambda r: visited.append(r.url) if r.is_navigation_request() else None)
    launchable.get_by_role("link", name="Pickup").click()
    acting = tab.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    # act carries only the impersonator's id (DESIGN §4), and Pickup has never seen frank sign in.
    assert acting.inner_text().startswith(f"Acting as erin (Erin Evans) in Acme EU for user id {frank.pk}")
    main = tab.get_by_role("main")
    assert main.get_by_text(str(erin.pk), exact=True).is_visible()  # sub
    assert main.get_by_text(str(frank.pk), exact=True).is_visible()  # act.sub
    assert main.get_by_text(str(eu.pk), exact=True).is_visible()  # org_id
    shot(tab, "pickup-as-erin-in-acme-eu-acting-for-frank")

    paths = [urlsplit(url).path for url in visited]
    assert f"/t/acme/o/{eu.pk}/oauth2/authorize" in paths, paths
    assert not any(re.fullmatch(r"/t/acme/(login/|oauth2/authorize)", p) for p in paths), paths
    session = ImpersonationSession.objects.get(ended_at__isnull=True)
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        frank.pk,
        erin.pk,
        eu.pk,
    )
    signed = OAuthAuthorization.objects.get(application__client_id="pickup")
    assert (signed.user_id, signed.impersonator_id, signed.organization_id) == (erin.pk, frank.pk, eu.pk)


# --- Configure business applications for impersonation -------------------------------------------


def configure_returns(page: Any, returns_url: str, *, shot: Shot) -> tuple[str, str]:
    """In the root Console (signed in as admin): a new application "Returns", then the seed's
    steps 1-5 on its tabs. The client id and secret the Console shows once (returned)."""
    nav(page, "Applications")
    page.get_by_role("button", name="New application").click()
    page.get_by_role("heading", name="New application", level=1).wait_for()
    page.get_by_label("Name", exact=True).fill("Returns")
    page.get_by_label("Description").fill("Returns and refunds for the support desk")
    page.get_by_label("Confidential (a server that can keep a client secret)").check()
    for grant in ("Authorization code", "Refresh token", "Token exchange"):
        page.get_by_label(grant, exact=True).check()
    page.get_by_label("Redirect URIs").fill(f"{returns_url}/callback")
    shot(page, "new-application")
    page.get_by_role("button", name="Create application").click()
    page.get_by_role("heading", name="Returns created").wait_for()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.get_by_label("Client secret").input_value().strip()
    shot(page, "created-secret-shown-once")
    page.get_by_role("button", name="Continue to the application").click()
    page.get_by_role("heading", name="General", level=2).wait_for()

    app_tab(page, "Protocol")
    page.get_by_label("Allow impersonation").check()
    page.get_by_label("Post-logout redirect URIs").fill(f"{returns_url}/")
    page.get_by_role("button", name="Update").click()
    flash(page, "Protocol settings saved.")
    shot(page, "protocol-impersonation-allowed")

    # Step 1: allow the application to use the impersonation API.
    app_tab(page, "API Authorization")
    for resource, scope in (
        ("User Impersonation", "internal_user_impersonate"),
        ("Organization User Impersonation", "internal_org_user_impersonate"),
    ):
        page.get_by_label("API resource", exact=True).select_option(label=f"{resource} (system)")
        page.get_by_role("button", name="Choose scopes").click()
        page.get_by_role("group", name=f"Authorized scopes of {resource}").wait_for()
        page.get_by_label(scope).check()
        page.get_by_role("button", name="Authorize").click()
        flash(page, f"Returns may now request the chosen scopes of {resource}.")
    shot(page, "step-1-api-authorization")

    # Step 2: an application role that permits impersonation.
    app_tab(page, "Roles")
    page.get_by_label("Role name").fill("Returns Impersonator")
    page.get_by_label("internal_user_impersonate").check()
    page.get_by_label("internal_org_user_impersonate").check()
    page.get_by_role("button", name="Create role").click()
    flash(page, "Role Returns Impersonator created. Assign it from its page.")
    shot(page, "step-2-application-role")

    # Step 3: the role to the impersonator (User Management → Roles).
    assign_role(page, "Returns Impersonator", "bob")
    assert page.get_by_text("Application: Returns").is_visible()
    shot(page, "step-3-role-assigned-to-bob")
    open_app(page, "Returns")
    app_tab(page, "Advanced")
    page.get_by_label("Skip login consent").check()
    page.get_by_label("Skip logout consent").check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Advanced settings saved.")
    shot(page, "skip-consent")

    # Step 5: discoverable in My Account, at the address it is served at.
    app_tab(page, "General")
    page.get_by_label("Discoverable application").check()
    page.get_by_label("Access URL").fill(f"{returns_url}/")
    page.get_by_role("button", name="Update").click()
    flash(page, "General settings saved.")
    shot(page, "step-5-discoverable")

    # Step 4 (optional): shared with the organizations.
    app_tab(page, "Shared Access")
    page.get_by_label("Share with all organizations (including ones created later)").check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Shared access saved.")
    shot(page, "step-4-shared-with-all-organizations")
    return client_id, secret


def test_06_configure_a_business_application_then_enter_it_as_alice(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    make_bob_an_impersonator(new_page(), live_url)
    alice, bob = user("alice"), user("bob")
    with pickup_server() as (returns_url, returns):
        console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
        client_id, secret = configure_returns(page, returns_url, shot=shot)
        # The integrator starts the application with what the Console showed.
        returns.set_app(
            PickupProgram(
                Config(actas_url=live_url, public_url=returns_url, client_id=client_id, client_secret=secret)
            )
        )
        app = Application.objects.get(client_id=client_id)
        assert app.subject_token_enabled and app.discoverable and app.skip_login_consent
        assert app.shared_access == Application.SharedAccess.ALL
        role = Role.objects.get(name="Returns Impersonator", audience_application=app)
        assert set(role.permissions.values_list("name", flat=True)) == {
            "internal_user_impersonate",
            "internal_org_user_impersonate",
        }

        # bob impersonates alice; My Account lists Returns; launching it is alice, for bob.
        bob_page = new_page()
        console_sign_in(bob_page, console_address(live_url), "bob", org_name="Acme")
        open_user(bob_page, "alice")
        tab = impersonate(bob_page, "alice", alice.display_name, REASON)
        launchable = tab.get_by_role("list", name=f"Applications you may enter as {alice.display_name}")
        assert launchable.get_by_role("link").all_inner_texts() == ["Returns"]
        assert launchable.get_by_text("Returns and refunds for the support desk").is_visible()
        shot(tab, "myaccount-as-alice-lists-returns")
        launchable.get_by_role("link", name="Returns").click()
        tab.get_by_role("button", name="Sign in with actas").click()
        acting = tab.get_by_role("status").filter(has_text="Acting as")
        acting.wait_for()
        assert acting.inner_text().startswith(
            f"Acting as alice (Alice Anders) in Acme for user id {bob.pk}"
        ), acting.inner_text()
        shot(tab, "returns-as-alice-acting-for-bob")
        signed = OAuthAuthorization.objects.get(application=app)
        assert (signed.user_id, signed.impersonator_id) == (alice.pk, bob.pk)


# --- Logs: a change made while impersonating --------------------------------------------------


def test_07_a_profile_edit_while_impersonating_is_in_logs_and_in_access_to_my_account(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    make_bob_an_impersonator(new_page(), live_url)
    alice, bob = user("alice"), user("bob")
    console_sign_in(page, console_address(live_url), "bob", org_name="Acme")
    open_user(page, "alice")
    tab = impersonate(page, "alice", alice.display_name, REASON)

    # My Account → Profile: alice's, edited as alice.
    tab.get_by_role("navigation", name="My Account sections").get_by_role("link", name="Profile").click()
    tab.get_by_role("heading", name=f"Edit {alice.display_name}'s profile").wait_for()
    tab.get_by_label("Family name").fill("Andersen")
    shot(tab, "myaccount-profile-as-alice")
    tab.get_by_role("button", name="Save profile").click()
    tab.get_by_text("Alice Andersen's profile is saved.").wait_for()
    shot(tab, "profile-saved")
    end_from_banner(tab, "Alice Andersen", "alice")

    # admin → Logs: the change, made by bob as alice.
    admin = new_page()
    console_sign_in(admin, console_address(live_url), "admin", org_name="Acme")
    nav(admin, "Logs")
    entry = admin.get_by_role("link", name="Profile updated while impersonating")
    entry.wait_for()
    # One change, one entry: the call that made it is folded into it.
    assert not admin.get_by_role("link", name="Changed while impersonating").count()
    row = admin.get_by_role("row").filter(has=entry)
    assert "bob as alice" in row.inner_text(), row.inner_text()
    shot(admin, "logs")
    entry.click()
    admin.get_by_role("heading", name="Profile updated while impersonating", level=1).wait_for()
    detail = " ".join(admin.get_by_role("main").inner_text().split())
    assert "bob as alice updated the profile of alice." in detail, detail
    assert "Family name: from Anders → to Andersen" in detail, detail
    assert "Via impersonation" in detail and "Initiator bob as alice" in detail, detail
    shot(admin, "logs-detail")
    event = AuditEvent.objects.get(action="resource-modification-via-impersonation")
    assert (event.impersonator_id, event.subject_id) == (bob.pk, alice.pk)

    # alice, in her own My Account: Access to my account shows bob, the reason and the change.
    own = new_page()
    sign_in_at(own, f"{live_url}/t/acme/myaccount/", "alice", org_name="Acme")
    own.get_by_role("navigation", name="My Account sections").get_by_role(
        "link", name="Access to my account"
    ).click()
    own.get_by_role("heading", name="Access to my account", level=1).wait_for()
    main = own.get_by_role("main")
    text = " ".join(main.inner_text().split())
    assert "Bob Brown" in text and REASON in text, text
    assert "Family name: from Anders → to Andersen" in text, text
    shot(own, "alice-access-to-my-account")


# --- Notify users on impersonation -----------------------------------------------------------


def test_08_notify_users_on_impersonation(live_url: str, demo: str, page: Any, shot: Any) -> None:
    """Login & Registration → Impersonation: the email switched off, then on again; Branding →
    Email Templates shows the message the user receives."""
    alice = user("alice")
    console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
    nav(page, "Login & Registration", heading="Impersonation")
    shot(page, "login-and-registration-impersonation")
    page.get_by_label("Off: do not email").check()
    page.get_by_role("button", name="Save").click()
    flash(page, "Impersonation settings saved.")
    effective = page.locator("#effective-settings")
    assert "Email the user when an impersonation starts Off Set by this organization" in " ".join(
        effective.inner_text().split()
    )
    shot(page, "email-switched-off")
    open_user(page, "alice")
    tab = impersonate(page, "alice", alice.display_name, REASON)
    assert emails_to(alice.email) == []
    end_from_banner(tab, alice.display_name, "alice")

    nav(tab, "Login & Registration", heading="Impersonation")
    tab.get_by_label("On: email the user").check()
    tab.get_by_role("button", name="Save").click()
    flash(tab, "Impersonation settings saved.")
    open_user(tab, "alice")
    second = impersonate(tab, "alice", alice.display_name, REASON)
    [email] = emails_to(alice.email)
    assert email.status in {"pending", "sent"}
    end_from_banner(second, alice.display_name, "alice")

    # Branding → Email Templates: the message alice was sent, to customize.
    nav(second, "Email Templates")
    shot(second, "email-templates")
    row = second.get_by_role("row").filter(has=second.get_by_text("Impersonation started", exact=True))
    row.get_by_role("link", name="Edit").click()
    second.get_by_role("heading", name=re.compile("Impersonation started")).first.wait_for()
    shot(second, "email-template-impersonation-started")


# --- Access organizations as an impersonator ---------------------------------------------------


def test_09_access_an_organization_as_the_impersonated_user(
    live_url: str, demo: str, page: Any, shot: Any
) -> None:
    """admin impersonates alice (shared into Acme EU), enters Pickup from My Account, and
    Pickup switches its impersonated token into Acme EU (organization_switch): still alice,
    still ``act`` = admin, now in Acme EU."""
    alice, admin, eu = user("alice"), user("admin"), org("acme-eu")
    console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
    open_user(page, "alice")
    tab = impersonate(page, "alice", alice.display_name, REASON)
    tab.get_by_role("list", name=f"Applications you may enter as {alice.display_name}").get_by_role(
        "link", name="Pickup"
    ).click()
    tab.get_by_role("button", name="Sign in with actas").click()
    acting = tab.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    assert acting.inner_text().startswith("Acting as alice (Alice Anders) in Acme for"), acting.inner_text()
    switch = tab.get_by_role("region", name="Open an organization")
    assert switch.get_by_label("Organization").locator("option").all_inner_texts() == ["Acme EU"]
    shot(tab, "pickup-as-alice-in-acme-offers-acme-eu")
    switch.get_by_role("button", name="Switch organization").click()
    tab.get_by_text("Switched to Acme EU (organization_switch).").wait_for()
    acting = tab.get_by_role("status").filter(has_text="Acting as")
    assert acting.inner_text().startswith("Acting as alice (Alice Anders) in Acme EU for"), (
        acting.inner_text()
    )
    main = tab.get_by_role("main")
    assert main.get_by_text(str(eu.pk), exact=True).is_visible()  # org_id
    assert main.get_by_text(str(admin.pk), exact=True).is_visible()  # act.sub
    assert main.get_by_text(str(alice.pk), exact=True).is_visible()  # sub
    shot(tab, "pickup-switched-to-acme-eu-still-acting-for-admin")
