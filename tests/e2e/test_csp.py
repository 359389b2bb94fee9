"""The Content Security Policy in a real browser: nothing on the Console is refused, and the
email-template preview still renders the email's own styles in its sandboxed frame."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from impersonation.emails import IMPERSONATION_STARTED
from tests.conftest import PASSWORD, World
from tests.identity.oauth_helpers import authorize_url, make_app, pkce_pair

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


class _Callback(BaseHTTPRequestHandler):
    """The client's redirect URI: a page, and a record of who arrived."""

    arrived: list[str]

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.arrived.append(self.path)
        body = b"<!doctype html><title>Client</title><h1>Client callback</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        return None


@pytest.fixture
def client_callback() -> Iterator[tuple[str, list[str]]]:
    """A client's redirect URI on a free port (never a fixed one: the demo may be running), and
    the paths that arrived there."""
    arrived: list[str] = []
    handler = type("Callback", (_Callback,), {"arrived": arrived})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/callback", arrived
    finally:
        server.shutdown()
        server.server_close()


def test_forms_that_end_at_the_client_reach_its_redirect_uri(
    transactional_db: None, world: World, live_server: Any, page: Any, client_callback: tuple[str, list[str]]
) -> None:
    """Chromium checks form-action on every redirect after a form submission: the sign-in form
    (POST → /authorize → the client) and the consent form (POST → the client) must get there."""
    redirect, arrived = client_callback
    make_app(world, client_id="asks", skip_login_consent=False, redirect=redirect)
    make_app(world, client_id="skips", skip_login_consent=True, redirect=redirect)
    # Sign-in form → /authorize → the client (consent skipped).
    page.goto(f"{live_server.url}{authorize_url('skips', challenge=pkce_pair()[1], redirect_uri=redirect)}")
    page.get_by_label("Username", exact=True).fill("target")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Client callback").wait_for()
    assert page.url.startswith(redirect) and "code=" in page.url
    # Consent form → the client.
    page.goto(f"{live_server.url}{authorize_url('asks', challenge=pkce_pair()[1], redirect_uri=redirect)}")
    page.get_by_role("button", name="Allow").click()
    page.get_by_role("heading", name="Client callback").wait_for()
    assert page.url.startswith(redirect) and "code=" in page.url
    callbacks = [path for path in arrived if path.startswith("/callback")]  # not the favicon
    assert len(callbacks) == 2 and all("code=" in path for path in callbacks)
