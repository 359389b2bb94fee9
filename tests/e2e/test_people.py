"""Sharing people and picking them, clicked through in a real browser (issue 14, items 2 and 10).

Seed 001 starts from users shared into a child organization: the administrator shares alice
with Acme EU from her page, finds her in Acme EU's Users with her home organization, and
gives her a role there by finding her with the user picker (search as you type).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from identity.models import RoleAssignment, UserAssociation
from tests.conftest import World, make_user
from tests.e2e.conftest import artifacts_dir
from tests.e2e.walkthrough import console_path, flash, nav, sign_in

pytestmark = pytest.mark.e2e


def test_share_alice_with_acme_eu_and_give_her_a_role_there(
    live_url: str, world: World, page: Any, shot: Any
) -> None:
    alice = make_user(world.root, "alice", family_name="Liddell")
    sign_in(page, live_url, console_path(world.root), "admin")

    # Users → alice → Share with organizations → Acme EU → Share.
    nav(page, "Users")
    page.get_by_role("table").get_by_role("link", name="alice", exact=True).click()
    page.get_by_role("heading", name="Profile", level=2).wait_for()
    page.get_by_role("button", name="Share with organizations").click()
    page.get_by_role("heading", name="Share alice with organizations", level=1).wait_for()
    assert page.get_by_text("alice is not shared with any organization yet.").is_visible()
    shot(page, "sharing-page")
    page.get_by_label("Acme EU", exact=True).check()
    page.get_by_role("button", name="Share", exact=True).click()
    flash(page, "alice is now shared with Acme EU.")
    organizations = page.get_by_role("region", name="Organizations")
    assert organizations.get_by_role("link", name="Acme EU", exact=True).is_visible()
    assert organizations.get_by_role("button", name="Stop sharing alice with Acme EU").is_visible()
    shot(page, "alice-shared-with-acme-eu")
    assert UserAssociation.objects.filter(user=alice, organization=world.eu).exists()

    # Organizations → Acme EU's Console → Users: alice, shared from Acme.
    nav(page, "Organizations")
    page.get_by_role("link", name=re.compile(r"^Switch to its Console\W*Acme EU$")).click()
    page.get_by_role("heading", name="Acme EU", level=1).wait_for()
    nav(page, "Users")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="alice", exact=True))
    assert row.get_by_text("Shared from Acme", exact=True).is_visible()
    shot(page, "acme-eu-users-with-alice")

    # Roles → Administrator → find alice as you type → Assign.
    nav(page, "Roles")
    page.get_by_role("table").get_by_role("link", name="Administrator", exact=True).click()
    page.get_by_role("heading", name="Administrator", level=1).wait_for()
    picker = page.get_by_role("form", name="Assign to a user")
    picker.get_by_label("Find by username, email or name").fill("ali")
    results = picker.get_by_role("table")
    results.get_by_role("row").filter(has_text="alice").wait_for()
    assert results.get_by_text("Shared from Acme", exact=True).is_visible()
    assert "/assign/" not in page.url  # the results came in place, without leaving the page
    shot(page, "picker-results")
    picker.get_by_role("button", name="Assign Administrator to alice").click()
    flash(page, "Administrator assigned to alice.")
    assigned = page.get_by_role("region", name=re.compile("^Assigned users in"))
    assert assigned.get_by_role("link", name="alice", exact=True).is_visible()
    shot(page, "alice-assigned")
    assert RoleAssignment.objects.filter(
        role=world.system.administrator, association__user=alice, association__organization=world.eu
    ).exists()


def test_picker_without_javascript(live_url: str, world: World, browser: Any, request: Any) -> None:
    """With JavaScript off the search opens a results page; clicking the person assigns.
    (Screenshots only: the accessibility audit needs JavaScript; the same templates are
    audited in the test above.)"""
    directory = artifacts_dir() / request.node.name
    directory.mkdir(parents=True, exist_ok=True)

    def shot(page: Any, name: str) -> None:
        page.screenshot(path=str(directory / f"{name}.png"), full_page=True)

    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, live_url, console_path(world.root), "admin")
        nav(page, "Console Settings")
        admins = page.get_by_role("region", name="Administrators")
        admins.get_by_label("Find by username, email or name").fill("imp")
        admins.get_by_role("button", name="Search").click()
        page.get_by_role("heading", name="Add an administrator", level=1).wait_for()
        shot(page, "no-js-picker-results")
        page.get_by_role("button", name="Add administrator role to impersonator").click()
        flash(page, "impersonator is now an administrator of Acme.")
        shot(page, "no-js-administrator-added")
        assert RoleAssignment.objects.filter(
            role=world.system.administrator, user=world.impersonator
        ).exists()
    finally:
        context.close()
