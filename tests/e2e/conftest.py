"""Browser fixtures: headless Debian Chromium driven by Playwright against a live server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import World
from tests.e2e.a11y import assert_accessible

CHROMIUM = os.environ.get("ACTAS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]


def artifacts_dir() -> Path:
    """Where screenshots go: ``$ACTAS_E2E_ARTIFACTS``, else ``test-artifacts/e2e/`` at the repo root."""
    configured = os.environ.get("ACTAS_E2E_ARTIFACTS")
    return Path(configured) if configured else REPO / "test-artifacts" / "e2e"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One browser per test module. While it runs, Playwright's sync API keeps an asyncio
    loop on this thread, and Django refuses ORM calls from a thread with a running loop; the
    test code and its fixtures are plain synchronous code, so the guard is lifted for exactly
    as long as the browser lives."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM} (Debian package 'chromium')"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _screenshot_on_failure(request: pytest.FixtureRequest, contexts: list[Any]) -> None:
    """After a failed test, a screenshot of every page still open (``failed-<n>.png``)."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.failed:
        return
    directory = artifacts_dir() / request.node.name
    directory.mkdir(parents=True, exist_ok=True)
    pages = [page for context in contexts for page in context.pages if not page.is_closed()]
    for index, page in enumerate(pages, start=1):
        page.screenshot(path=str(directory / f"failed-{index}.png"), full_page=True)


# Contexts ask for reduced motion: the stylesheet then drops its transitions, so axe measures
# colours as they settle, never half-way through a hover or focus transition.
A11Y = os.environ.get("ACTAS_A11Y", "1")  # "0": off; "report": print, do not fail


def audit(page: Any, *, where: str = "") -> None:
    """axe-core's WCAG 2.1 AA rules on an actas page (``tests.e2e.a11y``)."""
    if A11Y == "0":
        return
    try:
        assert_accessible(page, where=where)
    except AssertionError as failure:
        if A11Y != "report":
            raise
        print(f"\nA11Y {failure}")


def _audit_last_pages(request: pytest.FixtureRequest, contexts: list[Any]) -> None:
    """After a passing test, the pages it ends on are audited too."""
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.passed:
        return
    for context in contexts:
        for page in context.pages:
            audit(page, where=f"{request.node.name} (last page)")


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    _screenshot_on_failure(request, [context])
    _audit_last_pages(request, [context])
    context.close()


# --- more browsers, the live server as BASE_URL, screenshots -------------------------------


@pytest.fixture
def live_url(settings: Any, live_server: Any, transactional_db: None) -> str:
    """The live server's URL, also as ``BASE_URL`` (issuers and My Account's callback use it).
    Tenant bootstrap registers My Account's redirect URI from it, hence ``world`` below."""
    settings.BASE_URL = live_server.url
    return str(live_server.url)


@pytest.fixture
def world(live_url: str, world: World) -> World:
    """The tenant of ``tests.conftest``, built only once ``BASE_URL`` is the live server's
    (whatever order a test names its fixtures in)."""
    return world


@pytest.fixture
def new_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Open a page in a fresh browser context (another person's browser); closed at the end."""
    contexts: list[Any] = []

    def open_page() -> Any:
        context = browser.new_context(reduced_motion="reduce")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    _screenshot_on_failure(request, contexts)
    _audit_last_pages(request, contexts)
    for context in contexts:
        context.close()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Any:
    """``shot(page, "name")`` saves a full-page screenshot as
    ``<artifacts>/<test name>/<nn>-<name>.png`` and returns its path."""
    directory = artifacts_dir() / request.node.name
    counter = iter(range(1, 1000))
    if directory.is_dir():  # no stale screenshots from an earlier run
        for old in directory.glob("*.png"):
            old.unlink()

    def take(page: Any, name: str) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        audit(page, where=f"{request.node.name} step {name}")
        return path

    return take
