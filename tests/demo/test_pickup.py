"""Pickup, the demo relying party (demo/pickup), against a live actas with the demo tenant:
sign in, impersonate through actas's confirmation page and the token exchange, refresh,
End impersonation, sign out. A requests session plays the browser."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.core.management import call_command

from demo.pickup.app import Config, Pickup
from demo.pickup.server import server
from identity.models import Application, User
from identity.services.applications import application_update_protocol
from organizations.selectors import tenant_get

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "actas-demo-1"


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "form":
            self.forms.append(Form(named.get("action") or ""))
        elif tag == "input" and self.forms and named.get("type") == "hidden" and named.get("name"):
            self.forms[-1].fields[str(named["name"])] = named.get("value") or ""


def form(html: str, action: str | None = None) -> Form:
    """The first form of the page (posting to ``action``, if given), with its hidden fields."""
    parser = _Forms()
    parser.feed(html)
    found = [f for f in parser.forms if action is None or f.action == action]
    assert found, html[:500]
    return found[0]


def submit(browser: requests.Session, page: requests.Response, action: str | None = None, **data: str) -> Any:
    chosen = form(page.text, action)
    return browser.post(urljoin(page.url, chosen.action), {**chosen.fields, **data}, timeout=10)


def demo_user(username: str) -> User:
    return User.objects.get(username=username, organization=tenant_get(handle="acme"))


@pytest.fixture
def pickup(live_server: Any, settings: Any) -> Iterator[str]:
    """The demo tenant seeded, and Pickup served on a free port, registered at actas."""
    settings.BASE_URL = live_server.url
    call_command("seed_demo", stdout=io.StringIO())
    httpd = server(None, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{httpd.server_port}"
    app = Application.objects.get(client_id="pickup")
    application_update_protocol(
        actor=None,
        application=app,
        client_type=app.client_type,
        grant_types=app.grant_types,
        redirect_uris=[*app.redirect_uris.split(), f"{url}/callback"],
        post_logout_redirect_uris=[*app.post_logout_redirect_uris.split(), f"{url}/"],
        pkce_required=app.pkce_required,
        access_token_lifetime=app.access_token_lifetime,
        refresh_token_lifetime=app.refresh_token_lifetime,
        id_token_lifetime=app.id_token_lifetime,
        subject_token_enabled=app.subject_token_enabled,
        subject_token_expiry=app.subject_token_expiry,
    )
    httpd.set_app(Pickup(Config(actas_url=live_server.url, public_url=url)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield url
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def sign_in(browser: requests.Session, pickup: str, username: str) -> requests.Response:
    """Sign in with actas from Pickup's front page: actas's sign-in page, then back."""
    login = submit(browser, browser.get(pickup + "/", timeout=10), "/signin")
    assert login.status_code == 200 and "/t/acme/login/" in login.url, login.text[:300]
    home = submit(browser, login, username=username, password=PASSWORD)
    assert home.status_code == 200 and home.url == pickup + "/", home.text[:300]
    return home


def test_sign_in_impersonate_refresh_and_end(pickup: str) -> None:
    admin, alice = demo_user("admin"), demo_user("alice")
    with requests.Session() as browser:
        home = sign_in(browser, pickup, "admin")
        assert "admin (Ada Admin)" in home.text and str(admin.pk) in home.text
        assert "Acting as" not in home.text

        # Pickup's form → actas's own confirmation page (admin's sign-in is fresh).
        confirm = submit(browser, home, "/impersonate", requested_subject=str(alice.pk), reason="Ticket 7")
        assert confirm.status_code == 200 and "Impersonate Alice Anders?" in confirm.text
        chosen = form(confirm.text)
        answered = browser.post(
            urljoin(confirm.url, chosen.action),
            {**chosen.fields, "decision": "impersonate", "reason": "Ticket 7"},
            allow_redirects=False,
            timeout=10,
        )
        location = answered.headers["Location"]
        assert answered.status_code == 302 and location.startswith(f"{pickup}/callback#")

        # The browser never sends the fragment: Pickup's relay page posts it, as its script does.
        relay = browser.get(location.split("#", 1)[0], timeout=10)
        assert "Content-Security-Policy" in relay.headers and "<script nonce=" in relay.text
        fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
        acting = submit(browser, relay, "/callback", **fragment)
        banner = f"Acting as alice (Alice Anders) for admin (Ada Admin) — user id {admin.pk}"
        assert acting.url == pickup + "/" and banner in acting.text, acting.text[:1500]
        assert str(alice.pk) in acting.text and "Acme" in acting.text

        refreshed = submit(browser, acting, "/refresh")
        assert f"act kept (impersonator {admin.pk})" in refreshed.text and banner in refreshed.text

        ended = submit(browser, refreshed, "/end")
        assert "actas ended impersonation" in ended.text
        assert "(userinfo: HTTP 401): signed out." in ended.text and "Sign in with actas" in ended.text
        assert "Acting as" not in ended.text


def test_sign_out_ends_the_actas_session_and_forms_need_the_csrf_token(pickup: str) -> None:
    with requests.Session() as browser:
        home = sign_in(browser, pickup, "bob")
        assert "bob (Bob Brown)" in home.text
        assert browser.post(pickup + "/refresh", {"csrf_token": "forged"}, timeout=10).status_code == 403

        signed_out = submit(browser, home, "/signout")
        assert signed_out.url.startswith(pickup + "/") and "Sign in with actas" in signed_out.text
        # actas's session is gone too: signing in again asks for the password.
        again = submit(browser, signed_out, "/signin")
        assert "/t/acme/login/" in again.url
