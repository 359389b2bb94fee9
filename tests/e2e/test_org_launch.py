"""Organization impersonation reaches the applications (issue 14), clicked through in a real
browser against the demo tenant (``seed_demo``) and the real Pickup (demo/pickup).

eu-admin signs in to Acme EU's Console, impersonates erin with a reason, and in the My Account
tab opens Pickup: the link carries ``orgId`` of Acme EU, Pickup signs in at Acme EU's
endpoints, and actas's bound session makes that sign-in erin's, with ``act`` = eu-admin.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command

from identity.models import OAuthAuthorization, User
from impersonation.models import ImpersonationSession
from organizations.models import Organization
from tests.conftest import PASSWORD
from tests.demo.helpers import served_pickup

pytestmark = pytest.mark.e2e

REASON = "Ticket 1402: erin's pickup slot is missing"


@pytest.fixture
def demo(live_url: str) -> Iterator[str]:
    """The demo tenant (every password ``PASSWORD``) and Pickup serving on a free port."""
    call_command("seed_demo", password=PASSWORD, stdout=io.StringIO())
    with served_pickup(live_url) as url:
        yield url


def _org(handle: str) -> Organization:
    return Organization.objects.get(handle=handle, tenant__handle="acme")


def _console_sign_in(page: Any, base: str, org: Organization, username: str) -> None:
    page.goto(f"{base}/t/acme/o/{org.pk}/console/")
    page.get_by_role("heading", name=f"Sign in to {org.name}").wait_for()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Console sections").wait_for()


def _open_user(page: Any, username: str) -> None:
    page.get_by_role("navigation", name="Console sections").get_by_role("link", name="Users").click()
    page.get_by_role("heading", name="Users", level=1).wait_for()
    page.get_by_role("table").get_by_role("link", name=username, exact=True).click()
    page.get_by_role("heading", name="Profile", level=2).wait_for()


def _impersonate(page: Any, user: User, shot: Any) -> Any:
    """Impersonate User → the confirmation page with a reason → My Account as the user, in the
    new tab it opens in (returned)."""
    page.get_by_role("region", name="Impersonate User").get_by_role("button", name="Impersonate User").click()
    page.get_by_role("heading", name=f"Impersonate {user.display_name}?").wait_for()
    page.get_by_label("Reason").fill(REASON)
    shot(page, "console-confirm-impersonation")
    context = page.context
    before = len(context.pages)
    page.get_by_role("button", name=f"Impersonate {user.username}", exact=True).click()
    page.wait_for_load_state()
    if len(context.pages) > before:  # the Console opened My Account itself
        tab = context.pages[-1]
    else:  # the user's page says it started, with the link that opens My Account
        with context.expect_page() as opened:
            page.get_by_role("button", name=f"Open My Account as {user.username}").click()
        tab = opened.value
    tab.set_default_timeout(15_000)
    tab.get_by_role("region", name="Impersonation in progress").wait_for()
    return tab


def test_eu_admin_impersonates_erin_and_pickup_launched_from_acme_eu_is_erin_with_act(
    live_url: str, demo: str, page: Any, shot: Any
) -> None:
    eu = _org("acme-eu")
    erin = User.objects.get(username="erin", organization=eu)
    eu_admin = User.objects.get(username="eu-admin", organization=eu)

    _console_sign_in(page, live_url, eu, "eu-admin")
    _open_user(page, "erin")
    tab = _impersonate(page, erin, shot)
    banner = tab.get_by_role("region", name="Impersonation in progress")
    banner.get_by_text(f"You are impersonating {erin.display_name}").wait_for()
    assert urlsplit(tab.url).path.startswith(f"/t/acme/o/{eu.pk}/myaccount/")
    tab.get_by_role("heading", name="Applications", level=1).wait_for()

    launchable = tab.get_by_role("list", name=f"Applications you may enter as {erin.display_name}")
    link = launchable.get_by_role("link", name="Pickup")
    assert link.get_attribute("href") == f"{demo}/?orgId={eu.pk}"
    shot(tab, "myaccount-acme-eu-as-erin")

    visited: list[str] = []
    # Every address the tab is sent to, redirects included.
    tab.on(
        "request", lambda request: visited.append(request.url) if request.is_navigation_request() else None
    )
    link.click()
    acting = tab.get_by_role("status").filter(has_text="Acting as")
    acting.wait_for()
    assert urlsplit(tab.url)._replace(query="", fragment="").geturl() == f"{demo}/"
    text = acting.inner_text()
    assert text.startswith("Acting as erin (Erin Evans) in Acme EU for") and str(eu_admin.pk) in text, text
    main = tab.get_by_role("main")
    assert main.get_by_text("Acme EU", exact=True).is_visible()  # Organization (org_name)
    assert main.get_by_text(str(eu.pk), exact=True).is_visible()  # org_id
    assert main.get_by_text(str(erin.pk), exact=True).is_visible()  # sub
    assert main.get_by_text(str(eu_admin.pk), exact=True).is_visible()  # act.sub
    shot(tab, "pickup-erin-in-acme-eu-acting-for-eu-admin")

    # Signed in at Acme EU's endpoints; never at the root's sign-in page.
    paths = [urlsplit(url).path for url in visited]
    assert f"/t/acme/o/{eu.pk}/oauth2/authorize" in paths, paths
    assert not any(re.fullmatch(r"/t/acme/(login/|oauth2/authorize)", p) for p in paths), paths
    session = ImpersonationSession.objects.get(ended_at__isnull=True)
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        eu_admin.pk,
        erin.pk,
        eu.pk,
    )
    signed = OAuthAuthorization.objects.get(application__client_id="pickup")
    assert (signed.user_id, signed.impersonator_id, signed.organization_id) == (erin.pk, eu_admin.pk, eu.pk)
    assert signed.impersonation_id == session.pk


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
