"""Seed 001 "Allow impersonation for shared users", clicked on the login-flow builder.

In the first step, click Add Authentication and select Shared User Identifier; remove Username
& Password from the first step; add a second step with Username & Password; Update — on
Console Settings → Login flow (with JavaScript: htmx swaps only the builder) and on an
application's Login Flow tab in a child organization (without JavaScript: every click is a
plain form submission).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from identity.models import Application
from identity.selectors.applications import login_flow_steps
from identity.services.applications import application_create
from tests.conftest import World
from tests.e2e.conftest import artifacts_dir
from tests.e2e.walkthrough import app_tab, console_path, flash, nav, sign_in

pytestmark = pytest.mark.e2e

SUI = "SharedUserIdentifierExecutor"
PWD = "BasicAuthenticator"


def _step(scope: Any, number: int) -> Any:
    return scope.get_by_role("listitem", name=f"Step {number}", exact=True)


def _status(scope: Any, text: str) -> None:
    """Wait for the builder to say what the last click did."""
    scope.get_by_role("status").filter(has_text=text).wait_for()


def click_seed_001_flow(page: Any, scope: Any, *, shot: Any | None = None) -> None:
    """Seed 001's procedure on the builder inside ``scope``, up to (not including) Update.
    ``shot`` takes screenshots of the intermediate states (None: none)."""
    shot = shot or (lambda page, name: None)
    step1 = _step(scope, 1)
    step1.get_by_text("+ Add authentication").click()
    shot(page, "add-authentication-menu-open")
    step1.get_by_role("button", name=re.compile(r"^Shared User Identifier")).click()
    _status(scope, "Shared User Identifier added to step 1.")
    # The rule shows on step 1 straight away, before anything is saved.
    assert (
        _step(scope, 1)
        .get_by_text(
            "Shared User Identifier must be the only authentication in step 1: remove Username & Password."
        )
        .is_visible()
    )
    shot(page, "rule-shown-inline")

    _step(scope, 1).get_by_role("button", name="Remove Username & Password from step 1").click()
    _status(scope, "Username & Password removed from step 1.")
    assert scope.get_by_text("add a second step that authenticates them", exact=False).is_visible()

    scope.get_by_role("button", name="Add step", exact=True).click()
    _status(scope, "Step 2 added.")
    step2 = _step(scope, 2)
    step2.get_by_text("+ Add authentication").click()
    step2.get_by_role("button", name=re.compile(r"^Username & Password")).click()
    _status(scope, "Username & Password added to step 2.")
    assert scope.locator(".flow-builder__problem").count() == 0
    assert scope.get_by_text("Not saved yet").is_visible()
    shot(page, "two-steps-ready")


def _assert_saved_cards(scope: Any) -> None:
    assert _step(scope, 1).locator(".flow-option strong").all_inner_texts() == ["Shared User Identifier"]
    assert _step(scope, 2).locator(".flow-option strong").all_inner_texts() == ["Username & Password"]


def test_console_settings_login_flow_with_htmx(live_url: str, world: World, page: Any, shot: Any) -> None:
    """Acme EU's administrator builds Acme EU's Console flow; htmx swaps the builder in place."""
    sign_in(page, live_url, console_path(world.eu), "eu-admin")
    nav(page, "Console Settings")
    region = page.get_by_role("region", name="Login flow")
    assert region.get_by_text("inherited from Acme", exact=False).is_visible()
    shot(page, "console-settings-login-flow-before")
    page.evaluate("window.notReloaded = true")

    click_seed_001_flow(page, region, shot=shot)
    assert page.evaluate("window.notReloaded === true")  # every click was swapped by htmx
    assert login_flow_steps(application=world.system.console, org=world.eu) == [[PWD]]  # not yet saved

    region.get_by_role("button", name="Update", exact=True).click()
    flash(page, "Console login flow saved.")
    region = page.get_by_role("region", name="Login flow")
    assert region.get_by_text("its own flow", exact=False).is_visible()
    _assert_saved_cards(region)
    shot(page, "console-settings-login-flow-saved")
    assert login_flow_steps(application=world.system.console, org=world.eu) == [[SUI], [PWD]]
    assert login_flow_steps(application=world.system.console, org=world.root) == [[PWD]]


def _snapper(name: str) -> Any:
    """Screenshots like the ``shot`` fixture's, with an explicit timeout: in a context with
    JavaScript turned off, a screenshot without one has been seen to never return."""
    directory = artifacts_dir() / name
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.png"):
        old.unlink()
    counter = iter(range(1, 1000))

    def take(page: Any, label: str) -> None:
        page.screenshot(
            path=str(directory / f"{next(counter):02d}-{label}.png"), full_page=True, timeout=10_000
        )

    return take


def test_application_login_flow_in_a_child_org_without_javascript(
    live_url: str, world: World, browser: Any
) -> None:
    """Acme EU's administrator sets Acme EU's own flow for Pickup (owned by Acme, shared with
    every organization), in a browser with JavaScript turned off."""
    shot = _snapper("test_application_login_flow_in_a_child_org_without_javascript")
    app, _ = application_create(
        actor=None,
        org=world.root,
        name="Pickup",
        grant_types=["authorization_code"],
        redirect_uris=["https://pickup.example/callback"],
        shared_access=Application.SharedAccess.ALL,
    )
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, live_url, console_path(world.eu), "eu-admin")
        nav(page, "Applications")
        page.get_by_role("table").get_by_role("link", name="Pickup", exact=True).click()
        page.get_by_role("heading", name="Pickup", level=1).wait_for()
        app_tab(page, "Login Flow")
        region = page.get_by_role("region", name="Login Flow")
        assert region.get_by_text("the flow of Acme, which owns the application", exact=False).is_visible()
        shot(page, "application-login-flow-before")

        click_seed_001_flow(page, region, shot=shot)
        assert login_flow_steps(application=app, org=world.eu) == [[PWD]]

        region.get_by_role("button", name="Update", exact=True).click()
        flash(page, "Login flow saved.")
        region = page.get_by_role("region", name="Login Flow")
        assert region.get_by_text("Acme EU's own flow", exact=False).is_visible()
        assert region.get_by_role("button", name="Use Acme's flow").is_visible()
        _assert_saved_cards(region)
        shot(page, "application-login-flow-saved")
        assert login_flow_steps(application=app, org=world.eu) == [[SUI], [PWD]]
        assert login_flow_steps(application=app, org=world.root) == [[PWD]]
    finally:
        context.close()
