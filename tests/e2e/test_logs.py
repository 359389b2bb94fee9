"""Console → Logs in a real browser: an administrator changes an application, then reads the
audit trail as sentences and opens the event to see what changed, from → to."""

from __future__ import annotations

import re
from typing import Any

import pytest

from identity.audit.models import AuditEvent
from tests.conftest import World
from tests.e2e.walkthrough import console_path, nav, sign_in
from tests.identity.oauth_helpers import make_app

pytestmark = pytest.mark.e2e


def test_an_administrator_reads_a_change_in_logs(page: Any, live_url: str, world: World, shot: Any) -> None:
    make_app(world, client_id="ledger")
    sign_in(page, live_url, console_path(world.root), "admin")

    # The change: the application's description, on its General tab.
    nav(page, "Applications")
    page.get_by_role("link", name="App ledger").first.click()
    page.get_by_label("Description").fill("Month-end books")
    page.get_by_role("button", name="Update").click()
    page.wait_for_load_state()
    assert AuditEvent.objects.filter(action="application-update").count() == 1

    # Logs: the newest event reads as a sentence, with what changed.
    nav(page, "Logs")
    nav_bar = page.get_by_role("navigation", name="Console sections")
    assert nav_bar.get_by_role("link", name="Logs").get_attribute("aria-current") == "page"
    headings = nav_bar.locator(".console-nav__heading").all_inner_texts()
    assert [h.strip().lower() for h in headings] == ["user management", "applications", "settings"]
    window = page.get_by_label("From (UTC)")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", window.input_value())  # 24-hour ISO, no AM/PM
    assert window.get_attribute("type") == "text"
    row = page.locator("#audit-events tbody tr", has_text="Application updated").first
    assert "admin updated the general settings of App ledger." in row.inner_text()
    assert re.search(r"Description:\s+from\s+\(empty\)\s+→\s+to\s+Month-end books", row.inner_text())
    assert "application-update" not in row.inner_text()  # the raw code is for the detail
    when = row.locator("time")
    assert when.evaluate("el => el.getClientRects().length") == 1  # the time on one line
    shot(page, "logs-list")

    # The detail: the label, the sentence, from → to, and the raw code.
    row.get_by_role("link", name="Application updated").click()
    page.get_by_role("heading", name="Application updated", level=1).wait_for()
    assert page.locator("#event-sentence").inner_text() == "admin updated the general settings of App ledger."
    changes = page.locator("#event-changes").inner_text()
    assert re.search(r"Description:\s+from\s+\(empty\)\s+→\s+to\s+Month-end books", changes)
    assert page.locator("dd code", has_text="application-update").first.is_visible()
    shot(page, "logs-detail")

    # On a phone: the groups stay, identifiers wrap inside the page.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    shot(page, "logs-detail-phone")
