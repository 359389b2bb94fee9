"""The Console's login-flow builder: its buttons, with and without htmx, in both places it
serves (Console Settings and an application's Login Flow tab)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from identity.audit.models import AuditEvent
from identity.console.loginflow import draft_apply, draft_from_post
from identity.models import Application, LoginFlow
from identity.selectors.applications import login_flow_steps
from identity.services.applications import application_create
from tests.conftest import World, console_url, sign_in

SUI = "SharedUserIdentifierExecutor"
PWD = "BasicAuthenticator"
OTP = "email-otp"
HTMX = {"HX-Request": "true"}


@dataclass
class Place:
    """Where a builder lives: the page it is on, the URL its form posts to, the application
    whose flow it edits."""

    page: str
    post: str
    application: Application


@pytest.fixture(params=["console-settings", "application-tab"])
def place(request: pytest.FixtureRequest, world: World) -> Place:
    """Acme EU's Console flow, or Acme EU's flow of an application Acme shares with it."""
    if request.param == "console-settings":
        url = console_url(world.eu, "settings/")
        return Place(url, url + "login-flow/", world.system.console)
    app, _ = application_create(
        actor=None,
        org=world.root,
        name="Pickup",
        grant_types=["authorization_code"],
        redirect_uris=["https://pickup.example/cb"],
        shared_access=Application.SharedAccess.ALL,
    )
    url = console_url(world.eu, f"applications/{app.pk}/login-flow/")
    return Place(url, url, app)


@pytest.fixture
def eu_admin(client: Client, world: World) -> Client:
    return sign_in(client, world.eu_admin)


def _hidden_steps(body: str) -> list[str]:
    """The draft the page carries (its hidden "step" fields)."""
    return re.findall(r'<input type="hidden" name="step" value="([^"]*)">', body)


def _post(
    client: Client, place: Place, steps: list[str], action: str, headers: dict[str, str] | None = None
) -> Any:
    return client.post(place.post, {"step": steps, "action": action}, headers=headers)


# --- the draft, as plain functions ---------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "action", "after", "notice"),
    [
        ([[PWD]], f"add:0:{SUI}", [[PWD, SUI]], "Shared User Identifier added to step 1."),
        ([[PWD, SUI]], f"remove:0:{PWD}", [[SUI]], "Username & Password removed from step 1."),
        ([[SUI]], "add-step", [[SUI], []], "Step 2 added. Add an authentication to it."),
        ([[SUI], [PWD]], "remove-step:0", [[PWD]], "Step 1 removed."),
        ([[PWD], [SUI]], "up:1", [[SUI], [PWD]], "Step 2 is now step 1."),
        ([[SUI], [PWD]], "down:0", [[PWD], [SUI]], "Step 1 is now step 2."),
        # Nonsense changes nothing and says nothing.
        ([[PWD]], f"add:0:{PWD}", [[PWD]], ""),
        ([[PWD]], "add:0:MagicLink", [[PWD]], ""),
        ([[PWD]], f"add:7:{SUI}", [[PWD]], ""),
        ([[PWD]], "up:0", [[PWD]], ""),
        ([[PWD]], "down:0", [[PWD]], ""),
        ([[PWD]], "remove-step:-1", [[PWD]], ""),
        ([[PWD], [SUI], [OTP]], "add-step", [[PWD], [SUI], [OTP]], ""),
        ([[PWD]], "\x00", [[PWD]], ""),
        ([[PWD], [OTP]], "up:\u00b2", [[PWD], [OTP]], ""),  # a digit to str.isdigit(), not to int()
        ([[PWD], [OTP]], "down:\u0661", [[PWD], [OTP]], ""),  # an Arabic-Indic one
    ],
)
def test_each_button_changes_the_draft(
    steps: list[list[str]], action: str, after: list[list[str]], notice: str
) -> None:
    assert draft_apply(steps, action) == (after, notice)


def test_the_draft_is_read_from_the_hidden_fields_and_bounded(rf: Any) -> None:
    request = rf.post("/", {"step": [f"{SUI}", f"{PWD}, {OTP}", "", "Bad\x00Name,<b>", "x" * 65]})
    assert draft_from_post(request.POST) == [[SUI], [PWD, OTP], [], [], []]
    request = rf.post("/", {"step": [PWD] * 100})
    assert len(draft_from_post(request.POST)) == 6


# --- the seed's procedure, without JavaScript ------------------------------------------------


def test_seed_001_procedure_without_javascript(eu_admin: Client, world: World, place: Place) -> None:
    """Step 1 → Add authentication → Shared User Identifier; remove Username & Password; add a
    step with Username & Password; Update. Each click is a POST that answers the page with the
    draft changed and nothing saved."""
    page = eu_admin.get(place.page)
    body = page.content.decode()
    assert page.status_code == 200 and _hidden_steps(body) == [PWD]
    assert "Username &amp; Password" in body and "+ Add authentication" in body
    assert f'value="add:0:{SUI}"' in body and "Shared User Identifier" in body

    added = _post(eu_admin, place, [PWD], f"add:0:{SUI}")
    body = added.content.decode()
    assert added.status_code == 200 and _hidden_steps(body) == [f"{PWD},{SUI}"]
    assert "Shared User Identifier added to step 1." in body and "Not saved yet" in body
    # The rule shows on step 1 before anything is saved.
    assert (
        "Shared User Identifier must be the only authentication in step 1: remove Username &amp; Password."
        in body
    )
    assert "<h1>Console Settings</h1>" in body or "<h1>Pickup</h1>" in body  # the whole page

    removed = _post(eu_admin, place, [f"{PWD},{SUI}"], f"remove:0:{PWD}")
    body = removed.content.decode()
    assert _hidden_steps(body) == [SUI]
    assert "add a second step that authenticates them, such as Username &amp; Password" in body

    stepped = _post(eu_admin, place, [SUI], "add-step")
    body = stepped.content.decode()
    assert _hidden_steps(body) == [SUI, ""]
    assert "Step 2 has no authentication: add one or remove the step." in body

    filled = _post(eu_admin, place, [SUI, ""], f"add:1:{PWD}")
    body = filled.content.decode()
    assert _hidden_steps(body) == [SUI, PWD] and "flow-builder__problem" not in body
    assert not LoginFlow.objects.filter(organization=world.eu).exists()  # nothing saved yet

    saved = _post(eu_admin, place, [SUI, PWD], "save")
    assert saved.status_code == 302 and saved["Location"] == place.page
    assert login_flow_steps(application=place.application, org=world.eu) == [[SUI], [PWD]]
    assert login_flow_steps(application=place.application, org=world.root) == [[PWD]]
    event = AuditEvent.objects.get(action="login-flow-update", actor_id=world.eu_admin.pk)
    assert event.data == {"steps": [[SUI], [PWD]]}
    after = eu_admin.get(place.page).content.decode()
    assert "saved." in after and _hidden_steps(after) == [SUI, PWD] and "Not saved yet" not in after


@pytest.mark.parametrize(
    ("steps", "action", "after"),
    [
        ([PWD, SUI], "up:1", [SUI, PWD]),
        ([SUI, PWD], "down:0", [PWD, SUI]),
        ([SUI, PWD], "remove-step:1", [SUI]),
        ([PWD], f"add:0:{OTP}", [f"{PWD},{OTP}"]),
    ],
)
def test_move_and_remove_steps_without_javascript(
    eu_admin: Client, place: Place, steps: list[str], action: str, after: list[str]
) -> None:
    response = _post(eu_admin, place, steps, action)
    assert response.status_code == 200 and _hidden_steps(response.content.decode()) == after


def test_a_refused_save_keeps_the_draft_and_says_why(eu_admin: Client, world: World, place: Place) -> None:
    response = _post(eu_admin, place, [PWD, SUI], "save")
    body = response.content.decode()
    assert response.status_code == 400 and "The login flow was not saved" in body
    assert "Shared User Identifier can only be in step 1." in body
    assert _hidden_steps(body) == [PWD, SUI]  # the draft is still there to fix
    assert not LoginFlow.objects.filter(organization=world.eu).exists()
    assert not AuditEvent.objects.filter(action="login-flow-update").exists()


def test_the_page_shows_display_names_never_identifiers(eu_admin: Client, world: World, place: Place) -> None:
    body = eu_admin.get(place.page).content.decode()
    visible = re.sub(r'<input type="hidden"[^>]*>|value="[^"]*"', "", body)
    for identifier in (SUI, PWD, OTP):
        assert identifier not in visible


# --- with htmx ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "action", "after", "says"),
    [
        ([PWD], f"add:0:{SUI}", [f"{PWD},{SUI}"], "must be the only authentication in step 1"),
        ([f"{PWD},{SUI}"], f"remove:0:{PWD}", [SUI], "add a second step"),
        ([SUI], "add-step", [SUI, ""], "Step 2 has no authentication"),
        ([PWD, SUI], "up:1", [SUI, PWD], "Step 2 is now step 1."),
        ([SUI, PWD], "down:0", [PWD, SUI], "Shared User Identifier can only be in step 1."),
        ([SUI, PWD], "remove-step:1", [SUI], "Step 2 removed."),
    ],
)
def test_with_htmx_each_button_answers_only_the_builder(
    eu_admin: Client, place: Place, steps: list[str], action: str, after: list[str], says: str
) -> None:
    response = _post(eu_admin, place, steps, action, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<form id="login-flow-builder"') and "<html" not in body
    assert _hidden_steps(body) == after and says in body


def test_with_htmx_save_reloads_the_page_and_a_refusal_stays_in_the_builder(
    eu_admin: Client, world: World, place: Place
) -> None:
    refused = _post(eu_admin, place, [SUI], "save", headers=HTMX)
    body = refused.content.decode()
    assert refused.status_code == 200 and "<html" not in body  # htmx swaps only 2xx answers
    assert "The login flow was not saved" in body and "add a second step" in body
    assert not LoginFlow.objects.filter(organization=world.eu).exists()

    saved = _post(eu_admin, place, [SUI, PWD], "save", headers=HTMX)
    assert saved.status_code == 204 and saved["HX-Redirect"] == place.page
    assert login_flow_steps(application=place.application, org=world.eu) == [[SUI], [PWD]]

    reset = eu_admin.post(place.post, {"step": [SUI, PWD], "reset": "1"}, headers=HTMX)
    assert reset.status_code == 204 and reset["HX-Redirect"] == place.page
    assert not LoginFlow.objects.filter(organization=world.eu).exists()
    assert AuditEvent.objects.filter(action="login-flow-reset", actor_id=world.eu_admin.pk).exists()


def test_a_child_with_its_own_flow_may_return_to_the_owners(
    eu_admin: Client, world: World, place: Place
) -> None:
    assert "Use Acme&#x27;s flow" not in eu_admin.get(place.page).content.decode()
    _post(eu_admin, place, [SUI, PWD], "save")
    body = eu_admin.get(place.page).content.decode()
    assert "Use Acme&#x27;s flow" in body and "own flow" in body
    response = eu_admin.post(place.post, {"step": [SUI, PWD], "reset": "1"})
    assert response.status_code == 302
    assert login_flow_steps(application=place.application, org=world.eu) == [[PWD]]


# --- who may ----------------------------------------------------------------------------------


def test_only_editors_see_the_builder_and_post_to_it(client: Client, world: World, place: Place) -> None:
    sign_in(client, world.eu_admin)
    # Acme's own flows are not Acme EU's to edit: 403 whatever the button.
    root_post = place.post.replace(f"/o/{world.eu.pk}", "")
    for action in ("save", f"add:0:{SUI}"):
        assert client.post(root_post, {"step": [SUI, PWD], "action": action}).status_code in (403, 404)
    assert login_flow_steps(application=place.application, org=world.root) == [[PWD]]
    member = sign_in(Client(), world.eu_user)
    assert member.post(place.post, {"step": [SUI, PWD], "action": "save"}).status_code == 403
    assert not LoginFlow.objects.filter(organization=world.eu).exists()


def test_nonsense_buttons_are_never_500(eu_admin: Client, world: World, place: Place) -> None:
    for data in (
        {"step": [PWD], "action": "add:99999999999999999999:email-otp"},
        {"step": [PWD], "action": "x" * 5000},
        {"step": ["\x00"], "action": "remove:0:\x00"},
        {"action": "up:0"},
    ):
        response = eu_admin.post(place.post, data)
        assert response.status_code == 200, data
    assert not LoginFlow.objects.filter(organization=world.eu).exists()
