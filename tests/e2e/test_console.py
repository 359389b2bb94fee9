"""What an administrator sees in the Console, in a real browser."""

from __future__ import annotations

from typing import Any

import pytest

from organizations.models import Organization
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.e2e


def _sign_in(page: Any, base: str, path: str, username: str) -> None:
    page.goto(f"{base}{path}")
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_admin_signs_in_creates_an_organization_and_signs_out(
    transactional_db: None, world: World, live_server: Any, page: Any
) -> None:
    _sign_in(page, live_server.url, "/t/acme/console/users/", "admin")
    assert page.url.endswith("/t/acme/console/users/")
    table = page.get_by_role("table")
    assert table.get_by_role("link", name="target").is_visible()

    page.get_by_role("link", name="Organizations").first.click()
    assert page.get_by_text("Acme EU", exact=True).first.is_visible()
    # Open Acme EU's branch: its child arrives through htmx without a page load.
    page.locator("summary", has_text="Acme EU").first.click()
    page.get_by_text("Acme EU Sales").first.wait_for()

    page.get_by_label("Name").fill("Acme APAC")
    page.get_by_label("Handle").fill("acme-apac")
    page.get_by_role("button", name="Create organization").click()
    page.get_by_text("Organization Acme APAC created.").wait_for()
    assert Organization.objects.get(handle="acme-apac").parent_id == world.root.pk

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    page.goto(f"{live_server.url}/t/acme/console/")
    assert "/t/acme/login/" in page.url


def test_child_admin_is_refused_the_parent_console(
    transactional_db: None, world: World, live_server: Any, page: Any
) -> None:
    _sign_in(page, live_server.url, f"/t/acme/o/{world.eu.pk}/console/", "eu-admin")
    assert page.get_by_role("heading", name="Acme EU").first.is_visible()
    response = page.goto(f"{live_server.url}/t/acme/console/users/")
    assert response.status == 403
    assert page.get_by_text("administrator", exact=False).first.is_visible()
