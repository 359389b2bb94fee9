"""The impersonation round trip by keyboard alone: no mouse, every focused control visibly
focused (issue 14, item 12)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from impersonation.models import ImpersonationSession
from tests.conftest import PASSWORD, World

pytestmark = pytest.mark.e2e

# What the focused element is, and whether the focus shows: an outline or a focus ring (a box
# shadow), the two ways Pico CSS and actas's stylesheet draw it.
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const style = getComputedStyle(el);
  const name = (el.getAttribute('aria-label') || el.innerText || el.value || el.name || '').trim();
  return {
    tag: el.tagName.toLowerCase(),
    name: name.replace(/\\s+/g, ' '),
    label: el.labels && el.labels.length ? el.labels[0].innerText.trim() : '',
    visible: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0)
      || (style.boxShadow && style.boxShadow !== 'none'),
  };
}"""


def tab_to(page: Any, pattern: str, *, limit: int = 120) -> dict[str, Any]:
    """Press Tab until the focused control's name or label matches ``pattern``; every control
    passed on the way must show its focus."""
    wanted = re.compile(pattern)
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        if focused is None:
            continue
        assert focused["visible"], f"focus is not visible on {focused}"
        if wanted.search(focused["name"]) or wanted.search(focused["label"]):
            return dict(focused)
    raise AssertionError(f"no control matching {pattern!r} within {limit} presses of Tab")


def test_impersonate_and_end_by_keyboard(page: Any, live_url: str, world: World, shot: Any) -> None:
    page.goto(f"{live_url}/t/acme/console/")
    tab_to(page, r"^Username")
    page.keyboard.type("admin")
    tab_to(page, r"^Password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("navigation", name="Console sections").wait_for()

    tab_to(page, r"^Users$")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Users", level=1).wait_for()
    tab_to(page, r"^target$")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Profile", level=2).wait_for()
    tab_to(page, r"^Impersonate User$")
    shot(page, "impersonate-focused")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name=re.compile(r"^Impersonate .*\?$")).wait_for()
    tab_to(page, r"^Reason")
    page.keyboard.type("Ticket 12: checking by keyboard")
    tab_to(page, r"^Impersonate target$")
    page.keyboard.press("Enter")
    page.get_by_role("button", name="End impersonation").first.wait_for()
    assert ImpersonationSession.objects.filter(ended_at__isnull=True).count() == 1
    shot(page, "started")

    tab_to(page, r"^End impersonation$")
    shot(page, "end-focused")
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Profile", level=2).wait_for()
    assert ImpersonationSession.objects.get().ended_at is not None
    # Still signed in as the administrator, on the page the impersonation started from.
    page.get_by_role("navigation", name="Console sections").wait_for()
    shot(page, "ended")
