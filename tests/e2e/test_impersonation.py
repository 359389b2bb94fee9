"""The Console's Impersonate User action, when it cannot start, says why (issue 14, item 8),
clicked in a real browser. The seed documents' procedures themselves are walked in
``test_seed_000_impersonation_via_console.py`` and ``test_seed_001_shared_user_impersonation.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from identity.services.users import user_set_flags
from tests.conftest import World
from tests.e2e.walkthrough import console_path, nav, open_user, sign_in

pytestmark = pytest.mark.e2e


# --- a disabled action says why ----------------------------------------------------------------


def test_a_disabled_impersonate_action_shows_its_reason(
    live_url: str, world: World, page: Any, new_page: Any, shot: Any
) -> None:
    """A locked account; and, in an organization My Account is not shared with, the missing
    prerequisite: the button is disabled and the reason is next to it."""
    user_set_flags(actor=None, user=world.target, is_locked=True)
    sign_in(page, live_url, console_path(world.root), "admin")
    nav(page, "Users")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="target", exact=True))
    assert row.get_by_text("Locked", exact=True).is_visible()
    open_user(page, "target")
    action = page.get_by_role("region", name="Impersonate User")
    button = action.get_by_role("button", name="Impersonate User")
    assert button.is_disabled()
    assert button.evaluate("e => e.tagName") == "BUTTON" and button.get_attribute("href") is None
    reason = (
        "target's account is locked, and locked accounts cannot be impersonated. "
        "Unlock it first if you need to act as target."
    )
    assert action.get_by_text(reason).is_visible()
    assert button.get_attribute("aria-describedby") == "impersonate-why"
    shot(page, "locked-user-action-disabled")

    # Acme EU, where My Account is not shared yet: eu-admin is told who shares it.
    eu = new_page()
    sign_in(eu, live_url, console_path(world.eu), "eu-admin")
    open_user(eu, "eu-user")
    action = eu.get_by_role("region", name="Impersonate User")
    assert action.get_by_role("button", name="Impersonate User").is_disabled()
    assert action.get_by_text(
        "Impersonating from the Console opens My Account, and My Account is not enabled for Acme EU. "
        "An administrator of Acme can share it with Acme EU under "
        "Applications → My Account → Shared Access."
    ).is_visible()
    shot(eu, "myaccount-not-shared-action-disabled")
