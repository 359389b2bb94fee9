"""Remembered consent and the endpoints an integrator configures, clicked through in Chromium
against the demo tenant and the real Pickup (issue 16).

admin reads Pickup's endpoints on its Protocol tab and makes Pickup ask for consent (Advanced
→ Skip login consent off); alice allows Pickup once and is not asked again on her next
sign-in; she finds the consent in My Account → Applications and revokes it; Pickup asks again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from identity.audit.models import AuditEvent
from identity.models import OAuthConsent
from tests.conftest import PASSWORD
from tests.demo.helpers import served_pickup
from tests.e2e.walkthrough import app_tab, console_address, console_sign_in, flash, open_app

pytestmark = pytest.mark.e2e


@pytest.fixture
def demo(live_url: str) -> Iterator[str]:
    with served_pickup(live_url, password=PASSWORD) as url:
        yield url


def _pickup_sign_in(page: Any, pickup: str, username: str) -> None:
    """Pickup's front page → Sign in with actas → actas's sign-in page."""
    page.goto(pickup)
    page.get_by_role("button", name="Sign in with actas").click()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_consent_is_asked_once_shown_in_my_account_and_revoked(
    live_url: str, demo: str, page: Any, browser: Any, shot: Any
) -> None:
    console_sign_in(page, console_address(live_url), "admin")
    open_app(page, "Pickup")
    app_tab(page, "Protocol")
    endpoints = page.get_by_role("region", name="Endpoints")
    assert endpoints.get_by_label("Issuer").input_value() == f"{live_url}/t/acme/oauth2/token"
    assert endpoints.get_by_label("Discovery document").input_value() == (
        f"{live_url}/t/acme/oauth2/token/.well-known/openid-configuration"
    )
    endpoints.scroll_into_view_if_needed()
    shot(page, "pickup-protocol-endpoints")
    app_tab(page, "Advanced")
    page.get_by_label("Skip login consent").uncheck()
    page.get_by_role("button", name="Update").click()
    flash(page, "Advanced settings saved.")

    first = browser.new_context()
    alice = first.new_page()
    _pickup_sign_in(alice, demo, "alice")
    alice.get_by_role("heading", name="Allow Pickup?").wait_for()
    shot(alice, "alice-asked-to-allow-pickup")
    alice.get_by_role("button", name="Allow", exact=True).click()
    alice.get_by_role("heading", name="Signed in as alice (Alice Anders) in Acme").wait_for()
    consent = OAuthConsent.objects.get(user__username="alice", application__client_id="pickup")
    assert "openid" in consent.scopes
    first.close()

    # A new browser: she signs in again, and Pickup does not ask again.
    second = browser.new_context()
    alice = second.new_page()
    _pickup_sign_in(alice, demo, "alice")
    alice.get_by_role("heading", name="Signed in as alice (Alice Anders) in Acme").wait_for()
    shot(alice, "alice-signed-in-without-being-asked")

    alice.goto(f"{live_url}/t/acme/myaccount/")
    sections = alice.get_by_role("navigation", name="My Account sections")
    sections.get_by_role("link", name="Applications").click()
    allowed = alice.get_by_role("table", name="Applications you have allowed")
    allowed.get_by_role("row").filter(has_text="Pickup").wait_for()
    shot(alice, "my-account-applications-you-have-allowed")
    allowed.get_by_role("button", name="Revoke Pickup").click()
    alice.get_by_text("Pickup no longer has your consent", exact=False).wait_for()
    alice.get_by_text("You have not allowed any application to use your account.").wait_for()
    shot(alice, "consent-revoked")
    assert not OAuthConsent.objects.exists()
    assert AuditEvent.objects.filter(action="consent-revoke", actor_id=consent.user_id).exists()

    # Pickup was signed out of her account (its tokens revoked) and asks again.
    alice.goto(demo)
    alice.get_by_role("button", name="Sign in with actas").click()
    alice.get_by_role("heading", name="Allow Pickup?").wait_for()
    second.close()
