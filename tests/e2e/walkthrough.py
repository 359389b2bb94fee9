"""Steps the seed walkthroughs share (tests/e2e/test_seed_000_*.py, test_seed_001_*.py).

Every step is what a person does in the browser: open an address they were given (the
Console's or My Account's — the only addresses typed), then click and type into the forms the
pages show. Each ``shot`` argument saves a screenshot (``None``: this step is a prerequisite
replayed for a later procedure, without screenshots).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from organizations.models import Organization
from tests.conftest import PASSWORD

Shot = Callable[[Any, str], Any]


def no_shot(page: Any, name: str) -> None:
    return None


def console_path(org: Organization, path: str = "") -> str:
    """A Console page's path in the demo tenant (for tests that start from a fixture's org)."""
    if org.parent_id is None:
        return f"/t/acme/console/{path}"
    return f"/t/acme/o/{org.pk}/console/{path}"


def myaccount_path(org: Organization, path: str = "") -> str:
    if org.parent_id is None:
        return f"/t/acme/myaccount/{path}"
    return f"/t/acme/o/{org.pk}/myaccount/{path}"


def sign_in(page: Any, base: str, path: str, username: str) -> None:
    """Open a Console page, get the sign-in page, sign in with one username-and-password step."""
    console_sign_in(page, f"{base}{path}", username)


def console_address(base: str) -> str:
    """The root Console's address, the one every administrator of the demo tenant is given."""
    return f"{base}/t/acme/console/"


def sign_in_at(
    page: Any, address: str, username: str, *, org_name: str | None = None, shot: Shot = no_shot
) -> None:
    """Open ``address`` (a Console or My Account), sign in with username and password; the
    sign-in page names ``org_name`` (any organization when None)."""
    page.goto(address)
    heading = f"Sign in to {org_name}" if org_name else re.compile(r"^Sign in to ")
    page.get_by_role("heading", name=heading).wait_for()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    shot(page, f"sign-in-to-{org_name}-as-{username}")
    page.get_by_role("button", name="Sign in").click()


def console_sign_in(
    page: Any, address: str, username: str, *, org_name: str | None = None, shot: Shot = no_shot
) -> None:
    sign_in_at(page, address, username, org_name=org_name, shot=shot)
    page.get_by_role("navigation", name="Console sections").wait_for()


def nav(page: Any, section: str, *, heading: str | None = None) -> None:
    """Click a section in the Console's navigation; wait for its heading (``heading``, when
    it differs from the link)."""
    links = page.get_by_role("navigation", name="Console sections")
    links.get_by_role("link", name=section, exact=True).click()
    page.get_by_role("heading", name=heading or section, level=1, exact=True).wait_for()


def flash(page: Any, text: str) -> None:
    page.get_by_text(text, exact=True).wait_for()


def app_tab(page: Any, tab: str) -> None:
    page.get_by_role("navigation", name="Application settings").get_by_role("link", name=tab).click()
    page.get_by_role("heading", name=tab, level=2).wait_for()


def open_app(page: Any, name: str) -> None:
    nav(page, "Applications")
    page.get_by_role("table").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name="General", level=2).wait_for()


def open_user(page: Any, username: str) -> None:
    nav(page, "Users")
    page.get_by_role("table").get_by_role("link", name=username, exact=True).click()
    page.get_by_role("heading", name="Profile", level=2).wait_for()


def open_role(page: Any, name: str) -> None:
    nav(page, "Roles")
    page.get_by_role("table").get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, level=1).wait_for()


def pick(page: Any, container: Any, search: str, username: str) -> Any:
    """Type into a user picker and wait for ``username`` among the results: their row."""
    container.get_by_label("Find by username, email or name").fill(search)
    row = container.get_by_role("row").filter(has=page.get_by_text(username, exact=True))
    row.first.wait_for()
    return row.first


def assign_role(page: Any, role: str, username: str, *, shot: Shot = no_shot) -> None:
    """User Management → Roles → the role → find the person → Assign."""
    open_role(page, role)
    picker = page.get_by_role("form", name="Assign to a user")
    pick(page, picker, username[:3], username)
    shot(page, f"{role}-find-{username}".replace(" ", "-").lower())
    picker.get_by_role("button", name=f"Assign {role} to {username}").click()
    flash(page, f"{role} assigned to {username}.")
    assigned = page.get_by_role("region", name=re.compile("^Assigned users in"))
    assert assigned.get_by_role("link", name=username, exact=True).is_visible()


def add_administrator(page: Any, username: str, org_name: str) -> None:
    """Console Settings → Administrators → find the person → add the Administrator role."""
    nav(page, "Console Settings")
    admins = page.get_by_role("region", name="Administrators")
    pick(page, admins, username[:3], username)
    admins.get_by_role("button", name=f"Add administrator role to {username}").click()
    flash(page, f"{username} is now an administrator of {org_name}.")
    admins = page.get_by_role("region", name="Administrators")
    assert admins.get_by_role("link", name=username, exact=True).is_visible()


def switch_to_console_of(page: Any, org_name: str) -> str:
    """Organizations → "Switch to its Console" next to the organization; the address its
    people sign in at, read off its overview (returned)."""
    nav(page, "Organizations")
    page.get_by_role("link", name=re.compile(rf"^Switch to its Console\W*{re.escape(org_name)}$")).click()
    page.get_by_role("heading", name=org_name, level=1).wait_for()
    return str(page.get_by_label("Console", exact=True).input_value())


def impersonate(page: Any, username: str, display_name: str, reason: str, *, shot: Shot = no_shot) -> Any:
    """On a user's Console page: Impersonate User → the confirmation page with a reason → the
    page says it started → "Open My Account as …" opens the new tab (returned)."""
    page.get_by_role("region", name="Impersonate User").get_by_role("button", name="Impersonate User").click()
    page.get_by_role("heading", name=f"Impersonate {display_name}?").wait_for()
    page.get_by_label("Reason").fill(reason)
    shot(page, "confirmation-with-reason")
    page.get_by_role("button", name=f"Impersonate {username}", exact=True).click()
    page.get_by_text(f"The impersonation of {display_name} ({username}) has started.").wait_for()
    shot(page, "console-says-it-started")
    with page.context.expect_page() as opened:
        page.get_by_role("button", name=f"Open My Account as {username}").click()
    tab = opened.value
    tab.set_default_timeout(15_000)
    tab.get_by_role("region", name="Impersonation in progress").wait_for()
    return tab


def end_from_banner(tab: Any, display_name: str, username: str) -> None:
    tab.get_by_role("region", name="Impersonation in progress").get_by_role(
        "button", name="End impersonation"
    ).click()
    tab.get_by_text(f"You are no longer impersonating {display_name} ({username}).", exact=False).wait_for()


def grant_console_impersonation(page: Any, username: str, org_name: str, *, shot: Shot = no_shot) -> None:
    """Seed 000 "Assign permissions to the impersonator", in the Console the page is on."""
    open_role(page, "Impersonator")
    about = page.get_by_role("region", name="About this role")
    assert about.get_by_text("Application: My Account").is_visible()
    shot(page, "impersonator-role")
    assign_role(page, "Impersonator", username, shot=shot)
    shot(page, "impersonator-role-assigned")
    add_administrator(page, username, org_name)
    shot(page, "administrator-added")
