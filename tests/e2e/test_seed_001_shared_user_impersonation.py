"""Seed 001, "Allow impersonation for shared users", walked in the document's order (issue 14).

From a fresh demo tenant (``seed_demo``; alice, resident in Acme, is shared into Acme EU) with
the real Pickup serving, clicked in Chromium: the administrator puts the Shared User
Identifier first in Acme EU's Console login flow, then in Pickup's login flow there; alice signs
in to Acme EU in two steps and impersonates erin, first from the Console, then from Pickup.
The only addresses typed are the Consoles', and Pickup's own. Screenshots:
``test-artifacts/e2e/<test name>/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from identity.models import Application, OAuthAuthorization, User
from identity.selectors.applications import login_flow_steps
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from tests.conftest import PASSWORD
from tests.demo.helpers import served_pickup
from tests.e2e.test_login_flow_builder import click_seed_001_flow
from tests.e2e.walkthrough import (
    Shot,
    add_administrator,
    app_tab,
    assign_role,
    console_address,
    console_sign_in,
    flash,
    impersonate,
    nav,
    no_shot,
    open_app,
    open_user,
    switch_to_console_of,
)

pytestmark = pytest.mark.e2e

REASON = "Ticket 3310: Erin's delivery address is wrong"


@pytest.fixture
def demo(live_url: str) -> Iterator[str]:
    with served_pickup(live_url, password=PASSWORD) as url:
        yield url


def eu() -> Organization:
    return Organization.objects.get(handle="acme-eu", tenant__handle="acme")


def person(username: str, org: str) -> User:
    return User.objects.get(username=username, organization__handle=org, organization__tenant__handle="acme")


def sign_in_as_shared_user(page: Any, address: str, *, shot: Shot = no_shot) -> None:
    """alice at an Acme EU sign-in page: her identifier first, then her password."""
    page.get_by_role("heading", name="Sign in to Acme EU").wait_for()
    assert page.get_by_text("Step 1 of 2").is_visible()
    assert not page.get_by_label("Password").count()
    shot(page, "sign-in-step-1-identifier")
    page.get_by_label("Username", exact=True).fill("alice")
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("Step 2 of 2").wait_for()
    assert page.get_by_text("Signing in as alice").is_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    shot(page, "sign-in-step-2-password")
    page.get_by_role("button", name="Sign in").click()


def update_flow(page: Any, region: str, saved: str, *, shot: Shot = no_shot) -> None:
    """Seed 001's clicks on the builder in ``region``: Shared User Identifier alone in step 1,
    Username & Password in a second step; Update."""
    flow = page.get_by_role("region", name=region)
    shot(page, "login-flow-before")
    click_seed_001_flow(page, flow, shot=shot)
    flow.get_by_role("button", name="Update", exact=True).click()
    flash(page, saved)
    flow = page.get_by_role("region", name=region)
    assert flow.locator(".flow-option strong").all_inner_texts() == [
        "Shared User Identifier",
        "Username & Password",
    ]
    shot(page, "login-flow-saved")


def test_01_update_the_console_login_flow_then_alice_impersonates_erin_from_the_console(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
    # 1. The Console of the target organization.
    address = switch_to_console_of(page, "Acme EU")
    # 2. Console Settings → Login Flow; 3. Shared User Identifier first; 4. Update.
    nav(page, "Console Settings")
    assert (
        page.get_by_role("region", name="Login flow")
        .get_by_text("inherited from Acme", exact=False)
        .is_visible()
    )
    update_flow(page, "Login flow", "Console login flow saved.", shot=shot)
    console_app = Application.objects.get(organization__handle="acme", name="Console")
    assert login_flow_steps(application=console_app, org=eu()) == [
        ["SharedUserIdentifierExecutor"],
        ["BasicAuthenticator"],
    ]
    # The shared user may impersonate there (seed 000's Step 1, in Acme EU).
    assign_role(page, "Impersonator", "alice")
    assigned = page.get_by_role("region", name="Assigned users in Acme EU")
    row = assigned.get_by_role("row").filter(has=page.get_by_role("link", name="alice", exact=True))
    assert row.get_by_text("Shared profile").is_visible()
    add_administrator(page, "alice", "Acme EU")
    shot(page, "alice-administers-acme-eu")

    # alice signs in to Acme EU's Console: identifier, then password; Users → erin.
    alice_page = new_page()
    alice_page.goto(address)
    sign_in_as_shared_user(alice_page, address, shot=shot)
    alice_page.get_by_role("heading", name="Acme EU", level=1).wait_for()
    shot(alice_page, "acme-eu-console-as-alice")
    open_user(alice_page, "erin")
    erin, alice = person("erin", "acme-eu"), person("alice", "acme")
    tab = impersonate(alice_page, "erin", erin.display_name, REASON, shot=shot)
    banner = tab.get_by_role("region", name="Impersonation in progress")
    assert f"({erin.username}, Acme EU)" in banner.inner_text()
    shot(tab, "acme-eu-myaccount-as-erin-by-alice")
    session = ImpersonationSession.objects.get(ended_at__isnull=True)
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        alice.pk,
        erin.pk,
        eu().pk,
    )


def test_02_update_the_application_login_flow_then_alice_impersonates_erin_in_pickup(
    live_url: str, demo: str, page: Any, new_page: Any, shot: Any
) -> None:
    erin, alice = person("erin", "acme-eu"), person("alice", "acme")
    console_sign_in(page, console_address(live_url), "admin", org_name="Acme")
    # 1. The Console of the target organization; 2. Applications → Pickup; 3. Login Flow.
    switch_to_console_of(page, "Acme EU")
    open_app(page, "Pickup")
    app_tab(page, "Login Flow")
    # 4. Shared User Identifier first, then Username & Password; 5. Update.
    update_flow(page, "Login Flow", "Login flow saved.", shot=shot)
    # Pickup's impersonation role, for alice in Acme EU.
    assign_role(page, "Pickup Impersonator", "alice")
    shot(page, "pickup-impersonator-assigned-to-alice")
    # The ticket names erin; the administrator reads her user id off her page.
    open_user(page, "erin")
    erin_id = page.get_by_role("region", name="Profile").locator("code.break").inner_text().strip()
    assert erin_id == str(erin.pk)

    # alice opens Pickup, signs in as herself (Acme), and asks to impersonate erin in Acme EU.
    app = new_page()
    app.goto(demo)
    app.get_by_role("button", name="Sign in with actas").click()
    app.get_by_role("heading", name="Sign in to Acme").wait_for()
    app.get_by_label("Username", exact=True).fill("alice")
    app.get_by_label("Password", exact=True).fill(PASSWORD)
    app.get_by_role("button", name="Sign in").click()
    app.get_by_role("heading", name="Signed in as alice (Alice Anders) in Acme").wait_for()
    form = app.get_by_role("region", name="Impersonate a user")
    form.get_by_label("Organization").select_option(label="Acme EU")
    form.get_by_label("User id of the person to impersonate").fill(erin_id)
    form.get_by_label("Reason").fill(REASON)
    shot(app, "pickup-impersonate-erin-in-acme-eu")
    form.get_by_role("button", name="Impersonate", exact=True).click()

    # actas signs her in at Acme EU with Pickup's flow there, then asks her to confirm.
    sign_in_as_shared_user(app, demo, shot=shot)
    app.get_by_role("heading", name=f"Impersonate {erin.display_name}?").wait_for()
    assert urlsplit(app.url).path.startswith(f"/t/acme/o/{eu().pk}/")
    shot(app, "actas-confirmation")
    app.get_by_role("button", name="Impersonate erin", exact=True).click()
    acting = app.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    assert acting.inner_text().startswith(
        f"Acting as erin (Erin Evans) in Acme EU for alice (Alice Anders) — user id {alice.pk}"
    ), acting.inner_text()
    shot(app, "pickup-acting-as-erin-for-alice")
    session = ImpersonationSession.objects.get(ended_at__isnull=True)
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        alice.pk,
        erin.pk,
        eu().pk,
    )
    signed = OAuthAuthorization.objects.filter(application__client_id="pickup", impersonator=alice).get()
    assert (signed.user_id, signed.organization_id) == (erin.pk, eu().pk)
