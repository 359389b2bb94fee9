"""Pickup launched from an organization's My Account (issue 14, item 1), clicked through in a
real browser against the demo tenant (``seed_demo``) and the real Pickup (demo/pickup): its own
"Impersonate a user" offers the organization it was launched from. (The launch while
impersonating is walked in ``test_seed_000_impersonation_via_console.py``, procedure 5.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from identity.models import User
from organizations.models import Organization
from tests.conftest import PASSWORD
from tests.demo.helpers import served_pickup

pytestmark = pytest.mark.e2e

REASON = "Ticket 1402: erin's pickup slot is missing"


@pytest.fixture
def demo(live_url: str) -> Iterator[str]:
    """The demo tenant (every password ``PASSWORD``) and Pickup serving on a free port."""
    with served_pickup(live_url, password=PASSWORD) as url:
        yield url


def _org(handle: str) -> Organization:
    return Organization.objects.get(handle=handle, tenant__handle="acme")


def test_pickups_own_impersonation_in_the_organization_it_was_launched_from(
    live_url: str, demo: str, page: Any, shot: Any
) -> None:
    """eu-admin opens Pickup from Acme EU's My Account (signed in there, as themselves), picks
    Acme EU in Pickup's "Impersonate a user" and impersonates erin through actas's own
    confirmation page."""
    eu = _org("acme-eu")
    erin = User.objects.get(username="erin", organization=eu)
    page.goto(f"{live_url}/t/acme/o/{eu.pk}/myaccount/applications/")
    page.get_by_role("heading", name="Sign in to Acme EU").wait_for()
    page.get_by_label("Username", exact=True).fill("eu-admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("list", name="Your applications").get_by_role("link", name="Pickup").click()
    page.get_by_role("heading", name="Signed in as eu-admin (Eva Ulrich) in Acme EU").wait_for()
    organization = page.get_by_label("Organization")
    assert organization.locator("option").all_inner_texts() == ["Acme EU"]
    page.get_by_label("User id of the person to impersonate").fill(str(erin.pk))
    page.get_by_label("Reason").fill(REASON)
    shot(page, "pickup-signed-in-to-acme-eu-impersonate-form")

    page.get_by_role("button", name="Impersonate", exact=True).click()
    page.get_by_role("heading", name=f"Impersonate {erin.display_name}?").wait_for()
    assert urlsplit(page.url).path.startswith(f"/t/acme/o/{eu.pk}/")
    page.get_by_role("button", name="Impersonate erin", exact=True).click()
    acting = page.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    assert acting.inner_text().startswith("Acting as erin (Erin Evans) in Acme EU for eu-admin (Eva Ulrich)")
    shot(page, "pickup-acting-as-erin-in-acme-eu")
