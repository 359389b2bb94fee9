"""Pickup, the demo relying party (demo/pickup), against a live actas with the demo tenant:
sign in, impersonate through actas's confirmation page and the token exchange, refresh,
End impersonation, sign out. A requests session plays the browser."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from identity.models import User
from organizations.models import Organization
from organizations.selectors import tenant_get
from tests.demo.helpers import served_pickup

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


def demo_user_in(org_handle: str, username: str) -> User:
    return User.objects.get(username=username, organization=demo_org(org_handle))


@pytest.fixture
def pickup(live_server: Any, settings: Any) -> Iterator[str]:
    """The demo tenant seeded, and Pickup served on a free port, registered at actas."""
    settings.BASE_URL = live_server.url
    with served_pickup(live_server.url, password="actas-demo-1") as url:
        yield url


def demo_org(handle: str) -> Organization:
    return Organization.objects.get(tenant=tenant_get(handle="acme"), handle=handle)


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
        banner = f"Acting as alice (Alice Anders) in Acme for admin (Ada Admin) — user id {admin.pk}"
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


# --- launched from an organization ------------------------------------------------------------------


def launch(browser: requests.Session, pickup: str, org: Organization, username: str) -> requests.Response:
    """Open Pickup as an organization's My Account links it (``?orgId=``): straight to that
    organization's sign-in at actas, then back to Pickup's front page."""
    login = browser.get(f"{pickup}/?orgId={org.pk}", timeout=10)
    assert login.status_code == 200 and f"/t/acme/o/{org.pk}/login/" in login.url, login.text[:300]
    assert f"Sign in to {org.name}" in login.text
    authorize = next(
        r.headers["Location"] for r in login.history if "/oauth2/authorize" in r.headers["Location"]
    )
    assert urlsplit(authorize).path == f"/t/acme/o/{org.pk}/oauth2/authorize"
    home = submit(browser, login, username=username, password=PASSWORD)
    assert home.status_code == 200 and home.url == pickup + "/", home.text[:300]
    return home


def test_launched_from_an_organization_it_signs_in_there_and_shows_it(pickup: str) -> None:
    eu, erin = demo_org("acme-eu"), demo_user_in("acme-eu", "erin")
    with requests.Session() as browser:
        home = launch(browser, pickup, eu, "erin")
        assert "Signed in as erin (Erin Evans) in Acme EU" in home.text
        assert f"<code>{eu.pk}</code>" in home.text and f"<code>{erin.pk}</code>" in home.text
        # The refresh goes to the organization's token endpoint and stays in it.
        refreshed = submit(browser, home, "/refresh")
        assert "Refreshed: a new access token." in refreshed.text and "in Acme EU" in refreshed.text

        # A launch link naming no organization is not followed anywhere.
        odd = browser.get(f"{pickup}/?orgId=not-an-id", timeout=10)
        assert odd.url == pickup + "/" and "names no organization it can sign in to" in odd.text


def test_impersonate_in_the_chosen_organization_then_a_launch_there_is_the_target(pickup: str) -> None:
    """eu-admin, signed in to Pickup in Acme EU, picks Acme EU (no typed id), impersonates erin
    through Acme EU's endpoints; the browser is bound, so launching Pickup from Acme EU again
    signs in as erin with act."""
    eu, eu_admin, erin = (
        demo_org("acme-eu"),
        demo_user_in("acme-eu", "eu-admin"),
        demo_user_in("acme-eu", "erin"),
    )
    with requests.Session() as browser:
        home = launch(browser, pickup, eu, "eu-admin")
        assert f'<option value="{eu.pk}">Acme EU</option>' in home.text
        assert "Acme EU Sales" not in home.text  # eu-admin is no member there
        forged = submit(
            browser, home, "/impersonate", org=str(demo_org("acme-us").pk), requested_subject=str(erin.pk)
        )
        assert "Choose the organization from the list." in forged.text

        confirm = submit(
            browser, forged, "/impersonate", org=str(eu.pk), requested_subject=str(erin.pk), reason="T-14"
        )
        assert confirm.status_code == 200 and "Impersonate Erin Evans?" in confirm.text, confirm.text[:500]
        assert urlsplit(confirm.url).path.startswith(f"/t/acme/o/{eu.pk}/")
        chosen = form(confirm.text)
        answered = browser.post(
            urljoin(confirm.url, chosen.action),
            {**chosen.fields, "decision": "impersonate", "reason": "T-14"},
            allow_redirects=False,
            timeout=10,
        )
        location = answered.headers["Location"]
        relay = browser.get(location.split("#", 1)[0], timeout=10)
        fragment = {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}
        acting = submit(browser, relay, "/callback", **fragment)
        banner = f"Acting as erin (Erin Evans) in Acme EU for eu-admin (Eva Ulrich) — user id {eu_admin.pk}"
        assert banner in acting.text, acting.text[:1500]
        refreshed = submit(browser, acting, "/refresh")
        assert f"act kept (impersonator {eu_admin.pk})" in refreshed.text and banner in refreshed.text

        # Launched from Acme EU again: actas's session is bound, the sign-in is erin's.
        again = browser.get(f"{pickup}/?orgId={eu.pk}", timeout=10)
        assert again.url == pickup + "/" and "Acting as erin (Erin Evans) in Acme EU for" in again.text
        assert f"<code>{eu_admin.pk}</code>" in again.text  # act, under Impersonator


def test_the_organization_choice_lists_where_the_user_is_a_member(pickup: str) -> None:
    """alice, resident in Acme and shared into Acme EU, may pick either; bob only Acme."""
    eu = demo_org("acme-eu")
    with requests.Session() as browser:
        home = sign_in(browser, pickup, "alice")
        assert '<option value="">Acme</option>' in home.text
        assert f'<option value="{eu.pk}">Acme EU</option>' in home.text
    with requests.Session() as browser:
        home = sign_in(browser, pickup, "bob")
        assert '<option value="">Acme</option>' in home.text and "Acme EU" not in home.text


def test_switch_organization_offers_only_where_the_user_is_a_member(pickup: str) -> None:
    """Signed in at Acme, alice may switch Pickup's token into Acme EU (organization_switch);
    an organization the page did not offer is refused; bob is offered none."""
    eu, us = demo_org("acme-eu"), demo_org("acme-us")
    with requests.Session() as browser:
        home = sign_in(browser, pickup, "alice")
        assert "Open an organization" in home.text
        refused = submit(browser, home, "/switch", org=str(us.pk))
        assert "Choose the organization from the list." in refused.text
        assert "Signed in as alice (Alice Anders) in Acme<" in refused.text
        switched = submit(browser, refused, "/switch", org=str(eu.pk))
        assert "Switched to Acme EU (organization_switch)." in switched.text
        assert "Signed in as alice (Alice Anders) in Acme EU" in switched.text
        assert str(eu.pk) in switched.text
        assert "Open an organization" not in switched.text  # only from the root
    with requests.Session() as browser:
        assert "Open an organization" not in sign_in(browser, pickup, "bob").text
