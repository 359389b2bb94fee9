"""Accessibility checks for the browser tests: axe-core (bundled by axe-playwright-python) with
the WCAG 2.1 A and AA rules, run on the actas pages the tests visit.

Every screenshot a test takes (``shot``) and the page a test ends on are audited; a page of
the Console or My Account with a *serious* or *critical* violation fails the test, with axe's
own description of each violation and the elements it found. Other pages (the demo application,
another site) are not actas's and are not audited.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING = frozenset({"serious", "critical"})
# The people-facing parts of actas: the Console, My Account, and the pages a person passes
# through on the way (sign-in, the impersonation confirmation, consent, sign-out).
AUDITED = ("/console", "/myaccount", "/login", "/oauth2/authorize", "/impersonation", "/oidc/logout")

_axe = Axe()


def is_audited(url: str) -> bool:
    parts = urlsplit(url)
    return parts.path.startswith("/t/") and any(marker in parts.path for marker in AUDITED)


def violations(page: Any) -> list[dict[str, Any]]:
    """The serious and critical WCAG 2.1 AA violations on ``page`` as it is now."""
    results = _axe.run(
        page, options={"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]}
    )
    found: list[dict[str, Any]] = results.response.get("violations", [])
    return [v for v in found if v.get("impact") in BLOCKING]


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        nodes = violation.get("nodes", [])[:5]
        targets = [", ".join(str(t) for t in node.get("target", [])) for node in nodes]
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — {'; '.join(targets)}")
        lines.extend(f"    {' '.join(str(node.get('failureSummary', '')).split())}" for node in nodes)
    return "\n".join(lines)


def assert_accessible(page: Any, *, where: str = "") -> None:
    """Fail if an audited actas page has a serious or critical WCAG 2.1 AA violation."""
    if page.is_closed() or not is_audited(page.url):
        return
    found = violations(page)
    assert not found, f"accessibility violations on {where or page.url} ({page.url}):\n{describe(found)}"
