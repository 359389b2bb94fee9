"""Asgardeo's impersonation guides (seeds 000 and 001), clicked through in a real browser.

Each test follows one numbered procedure as an administrator would — the Console's pages,
the confirmation page, My Account in the new tab, the banner — asserting what the person
sees, with a few database checks, and saves a screenshot of each key screen (see
``conftest.artifacts_dir``). The business application "Pickup" is not running: its two pages
(the access URL and the redirect URI on 127.0.0.1:8765) are served by the browser itself
through ``route``, and its back channel (the code exchange) is a plain HTTP call.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from identity import tokens
from identity.models import Application, Role, User
from identity.selectors import login_flow_steps, user_roles_in_org
from identity.services.roles import role_assign
from identity.services.users import user_set_flags
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from tests.conftest import PASSWORD, World, make_user

pytestmark = pytest.mark.e2e

APP_HOST = "http://127.0.0.1:8765"
REDIRECT = f"{APP_HOST}/callback"
ACCESS_URL = f"{APP_HOST}/"
REASON = "Ticket 4711: the customer cannot see their order"


# --- small steps ---------------------------------------------------------------------------


def console_path(org: Organization, path: str = "") -> str:
    if org.parent_id is None:
        return f"/t/acme/console/{path}"
    return f"/t/acme/o/{org.pk}/console/{path}"


def myaccount_path(org: Organization, path: str = "") -> str:
    if org.parent_id is None:
        return f"/t/acme/myaccount/{path}"
    return f"/t/acme/o/{org.pk}/myaccount/{path}"


def sign_in(page: Any, base: str, path: str, username: str) -> None:
    """Open a Console page, get the sign-in page, sign in with one username-and-password step."""
    page.goto(f"{base}{path}")
    page.get_by_role("heading", name=re.compile(r"^Sign in to ")).wait_for()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Console sections").wait_for()


def nav(page: Any, section: str) -> None:
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name=section).click()
    page.get_by_role("heading", name=section, level=1).wait_for()


def flash(page: Any, text: str) -> None:
    """Wait for a confirmation message (the page after a successful POST)."""
    page.get_by_text(text, exact=True).wait_for()


def app_tab(page: Any, tab: str) -> None:
    page.get_by_role("navigation", name="Application settings").get_by_role("link", name=tab).click()
    page.get_by_role("heading", name=tab, level=2).wait_for()


def open_role(page: Any, name: str) -> None:
    nav(page, "Roles")
    page.get_by_role("table").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, level=1).wait_for()


def assign_role(page: Any, role: str, username: str) -> None:
    """User Management → Roles → the role → Assign to a user (by username)."""
    open_role(page, role)
    form = page.get_by_role("form", name="Assign to a user")
    form.get_by_label("Username").fill(username)
    form.get_by_role("button", name="Assign").click()
    flash(page, f"{role} assigned to {username}.")
    assigned = page.get_by_role("region", name=re.compile("^Assigned users in"))
    assert assigned.get_by_role("link", name=username, exact=True).is_visible()


def open_user(page: Any, username: str) -> None:
    nav(page, "Users")
    page.get_by_role("table").get_by_role("link", name=username, exact=True).click()
    page.get_by_role("heading", name="Profile", level=2).wait_for()


def impersonate(page: Any, username: str, display_name: str, *, reason: str = REASON) -> Any:
    """On a user's page: Impersonate User → the confirmation page → back on the user's page,
    which says it started → its link opens My Account as the user in a new tab (returned)."""
    page.get_by_role("region", name="Impersonate User").get_by_role("button", name="Impersonate User").click()
    page.get_by_role("heading", name=f"Impersonate {display_name}?").wait_for()
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name=f"Impersonate {username}", exact=True).click()
    page.get_by_text(f"The impersonation of {display_name} ({username}) has started.").wait_for()
    with page.context.expect_page() as opened:
        page.get_by_role("button", name=f"Open My Account as {username}").click()
    tab = opened.value
    tab.set_default_timeout(15_000)
    tab.get_by_role("region", name="Impersonation in progress").wait_for()
    return tab


def assert_myaccount_as(tab: Any, *, user: User, org_name: str, reason: str = REASON) -> None:
    """My Account, impersonated: the banner, "You are acting as …", the user's sections (not
    Access to my account), on Applications."""
    banner = tab.get_by_role("region", name="Impersonation in progress")
    banner.get_by_text(f"You are impersonating {user.display_name}").wait_for()
    text = banner.inner_text()
    assert f"({user.username}, {org_name})" in text and f"Reason: “{reason}”" in text, text
    assert banner.get_by_role("button", name="End impersonation").is_visible()
    assert tab.get_by_text(f"You are acting as {user.display_name} ({user.username})").is_visible()
    assert tab.get_by_text(f"Organization {org_name}").is_visible()
    sections = tab.get_by_role("navigation", name="My Account sections").get_by_role("link")
    assert sections.all_inner_texts() == ["Profile", "Applications", "Security"]
    assert tab.get_by_role("heading", name="Applications", level=1).is_visible()


def share_myaccount_in_console(page: Any, *, only: str | None = None) -> None:
    """Applications → My Account → Shared Access: with all organizations, or only ``only``."""
    nav(page, "Applications")
    page.get_by_role("table").get_by_role("link", name="My Account", exact=True).click()
    app_tab(page, "Shared Access")
    if only is None:
        page.get_by_label("Share with all organizations (including ones created later)").check()
    else:
        page.get_by_label("Share with only selected organizations").check()
        page.get_by_label(only, exact=True).check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Shared access saved.")


def switch_to_console_of(page: Any, org: Organization) -> None:
    """Organizations → the switch link next to the organization → its own Console."""
    nav(page, "Organizations")
    # The organization's name is visually hidden text after "Switch to its Console".
    switch = re.compile(rf"^Switch to its Console\W*{re.escape(org.name)}$")
    page.get_by_role("link", name=switch).click()
    page.get_by_role("heading", name=org.name, level=1).wait_for()
    assert page.url.endswith(console_path(org))


# --- Pickup, the business application --------------------------------------------------------


@dataclass
class Pickup:
    """The application's side of the flow: its access URL serves a "Sign in with actas" link
    (authorization code + PKCE S256), and its redirect URI records what comes back."""

    base: str
    client_id: str
    secret: str
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    callbacks: list[str] = field(default_factory=list)

    @property
    def authorize_url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest())
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "state": self.state,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return f"{self.base}/t/acme/oauth2/authorize?{urlencode(params)}"

    def serve(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).path == "/callback":
            self.callbacks.append(url)
            body = "<!doctype html><title>Pickup</title><h1>Pickup: signed in</h1>"
        else:
            link = html.escape(self.authorize_url)
            body = (
                f'<!doctype html><title>Pickup</title><h1>Pickup</h1><a href="{link}">Sign in with actas</a>'
            )
        route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body)

    def redeem(self) -> dict[str, Any]:
        """The back channel: the code from the redirect for tokens (HTTP Basic client auth)."""
        answer = {k: v[0] for k, v in parse_qs(urlsplit(self.callbacks[-1]).query).items()}
        assert answer.get("state") == self.state, answer
        response = requests.post(
            f"{self.base}/t/acme/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": answer["code"],
                "redirect_uri": REDIRECT,
                "code_verifier": self.verifier,
            },
            auth=(self.client_id, self.secret),
            timeout=15,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def configure_pickup_in_console(page: Any, impersonator: str, *, shot: Any | None) -> tuple[str, str]:
    """Seed 000 "Configure business applications for impersonation", in the root Console
    (already signed in as an administrator): create Pickup, then its tabs. Returns the
    client id and the client secret (shown once, on the page after creation). ``shot``
    takes the screenshots (None: none)."""
    shot = shot or (lambda page, name: None)
    nav(page, "Applications")
    page.get_by_role("button", name="New application").click()
    page.get_by_role("heading", name="New application", level=1).wait_for()
    page.get_by_label("Name", exact=True).fill("Pickup")
    page.get_by_label("Description").fill("Order pickup for support staff")
    page.get_by_label("Confidential (a server that can keep a client secret)").check()
    for grant in ("Authorization code", "Refresh token", "Token exchange"):
        page.get_by_label(grant, exact=True).check()
    page.get_by_label("Redirect URIs").fill(REDIRECT)
    page.get_by_role("button", name="Create application").click()
    page.get_by_role("heading", name="Pickup created").wait_for()
    client_id = page.locator("#client-id").inner_text().strip()
    secret = page.get_by_label("Client secret").input_value().strip()
    assert client_id and len(secret) >= 20
    assert page.get_by_text("Copy the client secret now.").is_visible()
    page.get_by_role("button", name="Copy client secret").click()
    page.get_by_role("status").filter(has_text="Copied to the clipboard.").wait_for()
    shot(page, "application-created-secret-shown-once")
    page.get_by_role("button", name="Continue to the application").click()
    page.get_by_role("heading", name="General", level=2).wait_for()

    # Protocol: impersonation (subject tokens and the token exchange) is off by default.
    app_tab(page, "Protocol")
    page.get_by_label("Allow impersonation").check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Protocol settings saved.")

    # Step 1: allow the application to use the impersonation APIs.
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
        flash(page, f"Pickup may now request the chosen scopes of {resource}.")
    authorized = page.get_by_role("region", name="API Authorization").get_by_role("table")
    assert authorized.get_by_text("internal_user_impersonate", exact=True).is_visible()
    assert authorized.get_by_text("internal_org_user_impersonate", exact=True).is_visible()
    shot(page, "api-authorization-impersonation")

    # Step 2: an application role that permits impersonation.
    app_tab(page, "Roles")
    page.get_by_label("Role name").fill("Pickup Impersonator")
    page.get_by_label("internal_user_impersonate").check()
    page.get_by_label("internal_org_user_impersonate").check()
    page.get_by_role("button", name="Create role").click()
    flash(page, "Role Pickup Impersonator created. Assign it from its page.")
    assert page.get_by_role("table").get_by_role("link", name="Pickup Impersonator").is_visible()
    shot(page, "application-role-created")

    # Step 3: give the role to the impersonator (User Management → Roles).
    assign_role(page, "Pickup Impersonator", impersonator)
    assert page.get_by_text("Application: Pickup").is_visible()

    # Step 4 (the seed's unnumbered one): skip login and logout consent.
    nav(page, "Applications")
    page.get_by_role("table").get_by_role("link", name="Pickup", exact=True).click()
    app_tab(page, "Advanced")
    page.get_by_label("Skip login consent").check()
    page.get_by_label("Skip logout consent").check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Advanced settings saved.")

    # Step 5: discoverable in My Account, with the page it opens.
    app_tab(page, "General")
    page.get_by_label("Discoverable application").check()
    page.get_by_label("Access URL").fill(ACCESS_URL)
    page.get_by_role("button", name="Update").click()
    flash(page, "General settings saved.")

    # Step 4 (optional): share it with the organizations.
    app_tab(page, "Shared Access")
    page.get_by_label("Share with all organizations (including ones created later)").check()
    page.get_by_role("button", name="Update").click()
    flash(page, "Shared access saved.")
    shot(page, "application-shared-with-all")
    return client_id, secret


# --- seed 000 ----------------------------------------------------------------------------------


def test_step_1_assign_permissions_to_the_impersonator(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """Roles → Impersonator (audience My Account) → assign; Console Settings → Add administrator;
    the new impersonator then finds Impersonate User enabled on a user's page."""
    helpdesk = make_user(world.root, "helpdesk")
    sign_in(page, live_url, console_path(world.root), "admin")

    open_role(page, "Impersonator")
    about = page.get_by_role("region", name="About this role")
    assert about.get_by_text("Application: My Account").is_visible()
    assert page.get_by_text("System roles and shared roles can be assigned but not edited.").is_visible()
    assign_role(page, "Impersonator", "helpdesk")
    shot(page, "impersonator-role-assigned")

    nav(page, "Console Settings")
    admins = page.get_by_role("region", name="Administrators")
    assert not admins.get_by_role("link", name="helpdesk").count()
    admins.get_by_label("Username").fill("helpdesk")
    admins.get_by_role("button", name="Add administrator").click()
    flash(page, "helpdesk is now an administrator of Acme.")
    admins = page.get_by_role("region", name="Administrators")
    assert admins.get_by_role("link", name="helpdesk", exact=True).is_visible()
    shot(page, "administrator-added")

    assert {r.name for r in user_roles_in_org(user=helpdesk, org=world.root)} == {
        "Administrator",
        "Impersonator",
    }

    # The impersonator's own Console: the action is there and enabled.
    other = new_page()
    sign_in(other, live_url, console_path(world.root), "helpdesk")
    open_user(other, "target")
    action = other.get_by_role("region", name="Impersonate User")
    start = action.get_by_role("button", name="Impersonate User")  # a link styled as a button
    assert start.is_enabled() and start.get_attribute("href", timeout=1000)
    assert not action.locator(".notice").count()
    shot(other, "impersonate-user-enabled")


def test_configure_business_application_for_impersonation(
    live_url: str, world: World, page: Any, shot: Any
) -> None:
    """Applications → New application, then Protocol, API Authorization, Roles, User Management
    → Roles, Advanced, General and Shared Access, as the seed orders them."""
    sign_in(page, live_url, console_path(world.root), "admin")
    client_id, _secret = configure_pickup_in_console(page, "impersonator", shot=shot)

    app = Application.objects.get(client_id=client_id)
    assert app.name == "Pickup" and app.client_type == Application.CLIENT_CONFIDENTIAL
    assert set(app.grant_types) == {
        "authorization_code",
        "refresh_token",
        Application.GRANT_TOKEN_EXCHANGE_TYPE,
    }
    assert app.redirect_uris.split() == [REDIRECT]
    assert app.subject_token_enabled and app.discoverable and app.access_url == ACCESS_URL
    assert app.skip_login_consent and app.skip_logout_consent
    assert app.shared_access == Application.SharedAccess.ALL
    role = Role.objects.get(name="Pickup Impersonator")
    assert role.audience_application_id == app.pk
    assert set(role.permissions.values_list("name", flat=True)) == {
        "internal_user_impersonate",
        "internal_org_user_impersonate",
    }
    assert role in user_roles_in_org(user=world.impersonator, org=world.root)


def test_step_2_impersonate_the_user_and_launch_an_application(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """The impersonator signs in to the Console, Users → target → Impersonate User → the
    confirmation page; My Account opens in a new tab as target and lists Pickup; launching it
    signs in to Pickup as target with ``act`` = the impersonator; End impersonation returns to
    target's Console page, still signed in as the impersonator, with nothing of target left."""
    # Step 1 (its own test above) for `impersonator`: the Impersonator role comes with the
    # fixture, Console administration is added here.
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    admin = new_page()
    sign_in(admin, live_url, console_path(world.root), "admin")
    client_id, secret = configure_pickup_in_console(admin, "impersonator", shot=None)
    admin.context.close()

    # 1. Own credentials.
    sign_in(page, live_url, console_path(world.root), "impersonator")
    # 2. Users → the user.
    open_user(page, "target")
    assert page.get_by_role("heading", name="Target", level=1).is_visible()
    shot(page, "target-user-page")
    # 3. Impersonate User → actas's confirmation page.
    page.get_by_role("region", name="Impersonate User").get_by_role("button", name="Impersonate User").click()
    page.get_by_role("heading", name="Impersonate Target?").wait_for()
    assert page.get_by_text(
        "this browser signs in to My Account and to applications as target", exact=False
    ).is_visible()
    page.get_by_label("Reason").fill(REASON)
    shot(page, "confirmation-page")
    console_tab = page
    page.get_by_role("button", name="Impersonate target", exact=True).click()
    page.get_by_text("The impersonation of Target (target) has started.").wait_for()
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Open My Account as target").click()
    tab = opened.value
    tab.set_default_timeout(15_000)

    # 4. My Account as the impersonated user.
    tab.get_by_role("region", name="Impersonation in progress").wait_for()
    assert_myaccount_as(tab, user=world.target, org_name="Acme")
    assert urlsplit(tab.url).path == myaccount_path(world.root, "applications/")
    session = ImpersonationSession.objects.get()
    assert session.impersonator_id == world.impersonator.pk and session.subject_id == world.target.pk
    assert session.channel == "console" and session.reason == REASON and session.ended_at is None

    # The Console tab carries the banner too, says it started, and links to My Account.
    console_tab.goto(f"{live_url}{console_path(world.root, f'users/{world.target.pk}/')}")
    console_banner = console_tab.get_by_role("region", name="Impersonation in progress")
    assert console_banner.get_by_text("You are impersonating Target").is_visible()
    action = console_tab.get_by_role("region", name="Impersonate User")
    assert action.get_by_text("You are impersonating target", exact=False).is_visible()
    assert action.get_by_role("button", name="Open My Account as target").is_visible()
    shot(console_tab, "console-banner-while-impersonating")

    # 5. The applications the impersonator may enter as target.
    launchable = tab.get_by_role("list", name="Applications you may enter as Target")
    assert launchable.get_by_role("link").all_inner_texts() == ["Pickup"]
    assert launchable.get_by_text("Order pickup for support staff").is_visible()
    shot(tab, "myaccount-as-target-applications")

    pickup = Pickup(base=live_url, client_id=client_id, secret=secret)
    tab.context.route(f"{APP_HOST}/**", pickup.serve)
    launchable.get_by_role("link", name="Pickup").click()
    tab.get_by_role("heading", name="Pickup", exact=True).wait_for()
    tab.get_by_role("link", name="Sign in with actas").click()
    tab.get_by_role("heading", name="Pickup: signed in").wait_for()
    assert len(pickup.callbacks) == 1 and urlsplit(pickup.callbacks[0]).path == "/callback"
    body = pickup.redeem()
    claims = tokens.verify(
        body["access_token"],
        typ="at+jwt",
        issuer=f"{live_url}/t/acme/oauth2/token",
        audience=tokens.ANY_AUDIENCE,
    )
    assert claims["sub"] == str(world.target.pk)
    assert claims["act"] == {"sub": str(world.impersonator.pk)}
    assert claims["impersonation_id"] == str(session.pk)

    # The banner's End impersonation (on My Account).
    tab.goto(f"{live_url}{myaccount_path(world.root, 'applications/')}")
    banner = tab.get_by_role("region", name="Impersonation in progress")
    banner.get_by_role("button", name="End impersonation").click()
    # Back on target's Console page where it started, signed in as the impersonator.
    tab.get_by_text("You are no longer impersonating Target (target).", exact=False).wait_for()
    assert urlsplit(tab.url).path == console_path(world.root, f"users/{world.target.pk}/")
    shot(tab, "impersonation-ended")
    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == ImpersonationSession.EndReason.ENDED
    introspection = requests.post(
        f"{live_url}/t/acme/oauth2/introspect",
        data={"token": body["access_token"]},
        auth=(client_id, secret),
        timeout=15,
    ).json()
    assert introspection.get("active") is False, introspection

    # Nothing of target is left in this browser; the impersonator is still signed in.
    assert not tab.get_by_role("region", name="Impersonation in progress").count()
    tab.goto(f"{live_url}{myaccount_path(world.root)}")
    tab.get_by_text("Signed in as Impersonator (impersonator)").wait_for()
    assert not tab.get_by_text("You are acting as").count()
    shot(tab, "myaccount-is-the-impersonators-own")
    console_tab.reload()
    console_tab.get_by_role("heading", name="Target", level=1).wait_for()
    assert not console_tab.get_by_role("region", name="Impersonation in progress").count()


def test_impersonate_users_in_an_organization(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """Share My Account with Acme EU, switch to Acme EU's Console, give eu-admin the Impersonator
    role there; eu-admin signs in to Acme EU's Console and impersonates eu-user. A user shared
    in from the parent (target) has no Impersonate User action."""
    sign_in(page, live_url, console_path(world.root), "admin")
    # Step 1: share My Account with the organization.
    share_myaccount_in_console(page, only="Acme EU")
    shot(page, "myaccount-shared-with-acme-eu")
    # Step 2: switch to the organization's Console; Roles → Impersonator → eu-admin.
    switch_to_console_of(page, world.eu)
    open_role(page, "Impersonator")
    assert page.get_by_text("Application: My Account").is_visible()
    assign_role(page, "Impersonator", "eu-admin")
    shot(page, "acme-eu-impersonator-assigned")
    nav(page, "Console Settings")  # eu-admin is Administrator already (the fixture).
    admins = page.get_by_role("region", name="Administrators")
    assert admins.get_by_role("link", name="eu-admin", exact=True).is_visible()

    # Step 3: eu-admin signs in to Acme EU's Console with their own credentials.
    eu = new_page()
    eu.goto(f"{live_url}{console_path(world.eu)}")
    eu.get_by_role("heading", name="Sign in to Acme EU").wait_for()
    assert eu.get_by_text("An organization of Acme").is_visible()
    shot(eu, "acme-eu-sign-in")
    eu.get_by_label("Username", exact=True).fill("eu-admin")
    eu.get_by_label("Password", exact=True).fill(PASSWORD)
    eu.get_by_role("button", name="Sign in").click()
    eu.get_by_role("heading", name="Acme EU", level=1).wait_for()

    # The documented limitation: a user shared in from the parent cannot be impersonated here.
    open_user(eu, "target")
    assert eu.get_by_text("Shared user", exact=True).is_visible()
    assert eu.get_by_text("target is resident in Acme and shared into Acme EU.", exact=False).is_visible()
    assert not eu.get_by_role("region", name="Impersonate User").count()
    assert not eu.get_by_text("Impersonate User").count()
    shot(eu, "shared-in-user-has-no-impersonate-action")

    open_user(eu, "eu-user")
    tab = impersonate(eu, "eu-user", world.eu_user.display_name)
    assert_myaccount_as(tab, user=world.eu_user, org_name="Acme EU")
    assert urlsplit(tab.url).path == myaccount_path(world.eu, "applications/")
    assert tab.get_by_text("There are no applications you may enter as Eu-User.").is_visible()
    shot(tab, "acme-eu-myaccount-as-eu-user")
    session = ImpersonationSession.objects.get()
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        world.eu_admin.pk,
        world.eu_user.pk,
        world.eu.pk,
    )


# --- seed 001 ----------------------------------------------------------------------------------


def test_shared_user_impersonates_through_the_shared_user_identifier(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """Acme EU's Console login flow: the Shared User Identifier, then username & password; target
    (resident in Acme, shared into Acme EU) gets Administrator and Impersonator there, signs in
    in two steps and impersonates eu-user."""
    sign_in(page, live_url, console_path(world.root), "admin")
    share_myaccount_in_console(page)
    switch_to_console_of(page, world.eu)

    nav(page, "Console Settings")
    flow = page.get_by_role("region", name="Login flow")
    assert flow.get_by_text("inherited from Acme", exact=False).is_visible()
    from tests.e2e.test_login_flow_builder import click_seed_001_flow

    click_seed_001_flow(page, flow)
    flow.get_by_role("button", name="Update", exact=True).click()
    flash(page, "Console login flow saved.")
    flow = page.get_by_role("region", name="Login flow")
    assert flow.get_by_text("its own flow", exact=False).is_visible()
    assert flow.locator(".flow-option strong").all_inner_texts() == [
        "Shared User Identifier",
        "Username & Password",
    ]
    shot(page, "acme-eu-console-login-flow")
    console_app = world.system.console
    assert login_flow_steps(application=console_app, org=world.eu) == [
        ["SharedUserIdentifierExecutor"],
        ["BasicAuthenticator"],
    ]

    for role in ("Administrator", "Impersonator"):
        assign_role(page, role, "target")
        assigned = page.get_by_role("region", name="Assigned users in Acme EU")
        row = assigned.get_by_role("row").filter(has=page.get_by_role("link", name="target", exact=True))
        assert row.get_by_text("Shared profile").is_visible()
    shot(page, "acme-eu-impersonator-assigned-to-shared-user")

    # target signs in to Acme EU's Console: identifier first, then the password.
    shared = new_page()
    shared.goto(f"{live_url}{console_path(world.eu)}")
    shared.get_by_role("heading", name="Sign in to Acme EU").wait_for()
    assert shared.get_by_text("Step 1 of 2").is_visible()
    assert not shared.get_by_label("Password").count()
    shot(shared, "sign-in-step-1-identifier")
    shared.get_by_label("Username", exact=True).fill("target")
    shared.get_by_role("button", name="Continue").click()
    shared.get_by_text("Step 2 of 2").wait_for()
    assert shared.get_by_text("Signing in as target").is_visible()
    shot(shared, "sign-in-step-2-password")
    shared.get_by_label("Password", exact=True).fill(PASSWORD)
    shared.get_by_role("button", name="Sign in").click()
    shared.get_by_role("heading", name="Acme EU", level=1).wait_for()
    assert "target" in shared.locator("header").first.inner_text()

    open_user(shared, "eu-user")
    tab = impersonate(shared, "eu-user", world.eu_user.display_name)
    assert_myaccount_as(tab, user=world.eu_user, org_name="Acme EU")
    shot(tab, "acme-eu-myaccount-as-eu-user-by-shared-user")
    session = ImpersonationSession.objects.get()
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        world.target.pk,
        world.eu_user.pk,
        world.eu.pk,
    )


# --- a disabled action says why ----------------------------------------------------------------


def test_a_disabled_impersonate_action_shows_its_reason(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """A locked account; and, in an organization My Account is not shared with, the missing
    prerequisite: the button is disabled and the reason is next to it."""
    user_set_flags(actor=None, user=world.target, is_locked=True)
    sign_in(page, live_url, console_path(world.root), "admin")
    nav(page, "Users")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="target", exact=True))
    assert row.get_by_text("Locked", exact=True).is_visible()
    open_user(page, "target")
    action = page.get_by_role("region", name="Impersonate User")
    button = action.get_by_role("button", name="Impersonate User")
    assert button.is_disabled()
    assert button.evaluate("e => e.tagName") == "BUTTON" and button.get_attribute("href") is None
    reason = (
        "target's account is locked, and locked accounts cannot be impersonated. "
        "Unlock it first if you need to act as target."
    )
    assert action.get_by_text(reason).is_visible()
    assert button.get_attribute("aria-describedby") == "impersonate-why"
    shot(page, "locked-user-action-disabled")

    # Acme EU, where My Account is not shared yet: eu-admin is told who shares it.
    eu = new_page()
    sign_in(eu, live_url, console_path(world.eu), "eu-admin")
    open_user(eu, "eu-user")
    action = eu.get_by_role("region", name="Impersonate User")
    assert action.get_by_role("button", name="Impersonate User").is_disabled()
    assert action.get_by_text(
        "Impersonating from the Console opens My Account, and My Account is not enabled for Acme EU. "
        "An administrator of Acme can share it with Acme EU under "
        "Applications → My Account → Shared Access."
    ).is_visible()
    shot(eu, "myaccount-not-shared-action-disabled")


@pytest.fixture
def real_pickup(live_url: str, world: World) -> Iterator[str]:
    """The demo relying party (demo/pickup) served on a free port: a business application
    ready for impersonation (tests.impersonation.helpers), discoverable, with Pickup's URLs."""
    from demo.pickup.app import Config
    from demo.pickup.app import Pickup as PickupApp
    from demo.pickup.server import server
    from tests.identity.oauth_helpers import SECRET
    from tests.impersonation.helpers import impersonation_app

    httpd = server(None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{httpd.server_port}"
    app = impersonation_app(world).app
    Application.objects.filter(pk=app.pk).update(
        name="Pickup",
        redirect_uris=f"{url}/callback",
        post_logout_redirect_uris=f"{url}/",
        discoverable=True,
        access_url=f"{url}/",
        skip_logout_consent=True,
        pkce_required=False,
    )
    httpd.set_app(PickupApp(Config(actas_url=live_url, public_url=url, client_secret=SECRET)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield url
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_launch_the_real_pickup_as_the_user_then_the_user_sees_access_to_my_account(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any, real_pickup: str
) -> None:
    """From My Account, as target, launch Pickup (the demo application): it signs in by SSO
    and shows that it acts as target for the impersonator; after End, target signs in to My
    Account and finds the impersonation under Access to my account."""
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    sign_in(page, live_url, console_path(world.root), "impersonator")
    open_user(page, "target")
    tab = impersonate(page, "target", "Target")
    assert_myaccount_as(tab, user=world.target, org_name="Acme")
    launchable = tab.get_by_role("list", name="Applications you may enter as Target")
    launchable.get_by_role("link", name="Pickup").click()
    tab.wait_for_url(f"{real_pickup}/")
    tab.get_by_role("button", name="Sign in with actas").click()
    acting = tab.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    assert f"user id {world.impersonator.pk}" in acting.inner_text()
    assert tab.get_by_text(str(world.target.pk)).first.is_visible()
    shot(tab, "pickup-acting-as-target")

    tab.goto(f"{live_url}{myaccount_path(world.root, 'applications/')}")
    tab.get_by_role("region", name="Impersonation in progress").get_by_role(
        "button", name="End impersonation"
    ).click()
    tab.get_by_text("You are no longer impersonating Target (target).", exact=False).wait_for()

    # The user: My Account → Access to my account lists it, with the reason and Pickup.
    own = new_page()
    own.goto(f"{live_url}{myaccount_path(world.root)}")
    own.get_by_label("Username", exact=True).fill("target")
    own.get_by_label("Password", exact=True).fill(PASSWORD)
    own.get_by_role("button", name="Sign in").click()
    own.get_by_role("navigation", name="My Account sections").get_by_role(
        "link", name="Access to my account"
    ).click()
    own.get_by_role("heading", name="Access to my account", level=1).wait_for()
    main = own.get_by_role("main")
    assert main.get_by_text(world.impersonator.display_name).first.is_visible()
    assert main.get_by_text(REASON, exact=False).first.is_visible()
    assert main.get_by_text("Pickup", exact=False).first.is_visible()
    assert main.get_by_text("Ended", exact=False).first.is_visible()
    shot(own, "access-to-my-account")
