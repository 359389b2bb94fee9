"""My Account is the user's account while impersonating (issue 14, items 5-7), clicked through
in a real browser: the administrator impersonates target from the Console, opens My Account
from the Console tab's link, edits target's profile, ends the impersonation and lands back on
target's Console page, still signed in as themselves; Console → Logs shows the change as made
by the administrator on target's behalf. Screenshots of each key screen (``conftest.shot``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from identity.audit.models import AuditEvent
from identity.models import SSOSession
from impersonation.models import ImpersonationSession
from tests.conftest import World
from tests.e2e.walkthrough import console_path, myaccount_path, nav, open_user, sign_in

pytestmark = pytest.mark.e2e

REASON = "Ticket 5150: fix the customer's name"


def test_admin_edits_the_users_profile_as_them_and_ends_back_on_the_users_page(
    live_url: str, world: World, page: Any, shot: Any
) -> None:
    sign_in(page, live_url, console_path(world.root), "admin")
    open_user(page, "target")
    user_page = console_path(world.root, f"users/{world.target.pk}/")

    # Impersonate User → the confirmation page; a missing reason is answered in this tab.
    action = page.get_by_role("region", name="Impersonate User")
    action.get_by_role("button", name="Impersonate User").click()
    page.get_by_role("heading", name="Impersonate Target?").wait_for()
    assert page.get_by_text("(required)").is_visible()
    page.get_by_role("button", name="Impersonate target", exact=True).click()
    page.get_by_text("Give a reason for this impersonation", exact=False).wait_for()
    assert len(page.context.pages) == 1
    shot(page, "reason-missing-inline")
    page.get_by_label("Reason").fill(REASON)
    page.get_by_role("button", name="Impersonate target", exact=True).click()

    # The Console tab says it started, with the link to My Account as target.
    page.get_by_text("The impersonation of Target (target) has started.").wait_for()
    assert urlsplit(page.url).path == user_page
    shot(page, "console-says-it-started")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name="Open My Account as target").click()
    tab = opened.value
    tab.set_default_timeout(15_000)
    tab.get_by_text("You are acting as Target (target)").wait_for()
    sections = tab.get_by_role("navigation", name="My Account sections").get_by_role("link")
    assert sections.all_inner_texts() == ["Profile", "Applications", "Security"]

    # Profile: target's, editable (but not the email address).
    sections.get_by_text("Profile").click()
    tab.get_by_role("heading", name="Edit Target's profile").wait_for()
    email = tab.get_by_label("Email address")
    assert email.get_attribute("readonly") is not None
    tab.get_by_label("Given name").fill("Tara")
    tab.get_by_label("Family name").fill("Get")
    tab.get_by_role("button", name="Save profile").click()
    tab.get_by_text("Tara Get's profile is saved.").wait_for()
    shot(tab, "myaccount-profile-saved-as-target")
    world.target.refresh_from_db()
    assert (world.target.given_name, world.target.family_name) == ("Tara", "Get")

    # Security: target's sessions, read-only.
    sections.get_by_text("Security").click()
    tab.get_by_role("heading", name="Security", level=1).wait_for()
    assert tab.get_by_text("this page is read-only", exact=False).is_visible()
    assert not tab.get_by_role("button", name="Sign out everywhere else").count()
    shot(tab, "myaccount-security-read-only")

    # End impersonation (the banner): back on target's Console page, signed in as admin.
    session = ImpersonationSession.objects.get()
    old_sso = session.sso_session_id
    tab.get_by_role("region", name="Impersonation in progress").get_by_role(
        "button", name="End impersonation"
    ).click()
    tab.get_by_text("You are no longer impersonating Tara Get (target).", exact=False).wait_for()
    assert urlsplit(tab.url).path == user_page
    assert not tab.get_by_role("region", name="Impersonation in progress").count()
    assert tab.get_by_role("navigation", name="Console sections").is_visible()
    again = tab.get_by_role("region", name="Impersonate User").get_by_role("button", name="Impersonate User")
    assert again.is_enabled()  # a new one can start
    shot(tab, "ended-back-on-the-users-page")
    session.refresh_from_db()
    assert session.end_reason == "ended" and session.ended_by_id == world.admin.pk
    live = SSOSession.objects.get(user=world.admin, ended_at__isnull=True)
    assert live.pk != old_sso

    # My Account is the administrator's own again.
    tab.goto(f"{live_url}{myaccount_path(world.root)}")
    tab.get_by_text("Signed in as Admin (admin)", exact=False).wait_for()

    # Console → Logs: the change, by admin on target's behalf.
    event = AuditEvent.objects.get(action="resource-modification-via-impersonation")
    assert event.impersonator_id == world.admin.pk and event.subject_id == world.target.pk
    page.goto(f"{live_url}{console_path(world.root)}")
    nav(page, "Logs")
    page.goto(f"{live_url}{console_path(world.root, 'logs/')}?action=resource-modification-via-impersonation")
    table = page.locator("#audit-events")
    table.wait_for()
    rows = table.locator("tbody tr")
    assert rows.count() == 1
    assert "admin" in rows.first.inner_text()
    shot(page, "logs-modification-via-impersonation")
    rows.first.get_by_role("link").first.click()
    page.get_by_text("resource-modification-via-impersonation", exact=False).first.wait_for()
    assert page.get_by_text(str(session.pk), exact=False).first.is_visible()
    shot(page, "logs-event-detail")
