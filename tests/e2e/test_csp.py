"""The Content Security Policy in a real browser: nothing on the Console is refused, and the
email-template preview still renders the email's own styles in its sandboxed frame."""

from __future__ import annotations

from typing import Any

import pytest

from impersonation.emails import IMPERSONATION_STARTED
from tests.conftest import PASSWORD, World
from tests.identity.oauth_helpers import REDIRECT, authorize_url, make_app, pkce_pair

pytestmark = pytest.mark.e2e


def test_console_pages_and_the_email_preview_work_under_the_policy(
    transactional_db: None, world: World, live_server: Any, page: Any
) -> None:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None,
    )
    page.goto(f"{live_server.url}/t/acme/console/")
    page.get_by_label("Username", exact=True).fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Organizations").first.click()
    page.locator("summary", has_text="Acme EU").first.click()
    page.get_by_text("Acme EU Sales").first.wait_for()  # htmx works under script-src 'self'

    page.goto(f"{live_server.url}/t/acme/console/email-templates/{IMPERSONATION_STARTED}/en/")
    page.get_by_label("HTML body").fill(
        '<p id="styled" style="color: rgb(200, 0, 0)">Styled {{ reason }}</p>'
        '<style>#sheet { color: rgb(0, 120, 0); }</style><p id="sheet">Sheet</p>'
    )
    page.get_by_role("button", name="Preview").click()
    frame = page.frame_locator("#preview-html")
    styled = frame.locator("#styled")
    styled.wait_for()
    assert "Styled" in styled.inner_text()
    assert styled.evaluate("e => getComputedStyle(e).color") == "rgb(200, 0, 0)"
    assert frame.locator("#sheet").evaluate("e => getComputedStyle(e).color") == "rgb(0, 120, 0)"
    # The page's own layout comes from static CSS (no inline styles on the page itself).
    assert page.locator("#preview-text").evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert refused == []


def test_forms_that_end_at_the_client_reach_its_redirect_uri(
    transactional_db: None, world: World, live_server: Any, page: Any
) -> None:
    """Chromium checks form-action on every redirect after a form submission: the sign-in form
    (POST → /authorize → the client) and the consent form (POST → the client) must get there."""
    make_app(world, client_id="asks", skip_login_consent=False)
    make_app(world, client_id="skips", skip_login_consent=True)
    arrived: list[str] = []

    def callback(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>Client callback</h1>")

    page.context.route(f"{REDIRECT}**", callback)
    # Sign-in form → /authorize → the client (consent skipped).
    page.goto(f"{live_server.url}{authorize_url('skips', challenge=pkce_pair()[1])}")
    page.get_by_label("Username", exact=True).fill("target")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Client callback").wait_for()
    assert page.url.startswith(REDIRECT) and "code=" in page.url
    # Consent form → the client.
    page.goto(f"{live_server.url}{authorize_url('asks', challenge=pkce_pair()[1])}")
    page.get_by_role("button", name="Allow").click()
    page.get_by_role("heading", name="Client callback").wait_for()
    assert page.url.startswith(REDIRECT) and "code=" in page.url
    assert len(arrived) == 2
