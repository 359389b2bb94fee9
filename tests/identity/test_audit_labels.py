"""The audit trail in words (identity.audit.labels and the bulk name look-ups of
identity.selectors.audit_log): a label for every action the code writes, one initiator rendering
for every event of a request, changes as (field, from, to) rows however a service stored them,
names instead of ids."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from identity import context
from identity.audit.labels import (
    ACTIONS,
    API_CALL_ACTIONS,
    AuditNames,
    action_label,
    describe,
    event_changes,
    initiator,
    sentence,
)
from identity.audit.models import AuditEvent
from identity.audit.services import audit_record
from identity.models import Role
from identity.selectors.audit_log import audit_event_views
from identity.services.application_edits import application_update_general
from identity.services.applications import application_share
from identity.services.roles import role_assign, role_create
from identity.services.users import user_profile_update, user_set_flags
from organizations.services import organization_settings_update
from tests.conftest import World
from tests.identity.oauth_helpers import make_app

REPO = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("identity", "impersonation", "myaccount", "organizations", "config")


# --- every action the code writes has words -----------------------------------------------------


class ActionCollector:
    """Finds the action names the code hands to the audit trail: the ``action`` argument of
    every call to a function whose name contains "audit" (``audit_record``, ``audit_refusal``
    and the modules' own helpers, by keyword or by position), and the ``"action"`` key of a
    dict built inside such a function (the API's ``_audit_fields``). Module constants,
    ``a if c else b`` and ``MAPPING.get(key, DEFAULT)`` are followed; a parameter passed on
    (``action=action`` inside a helper, ``_clip(action, 100)`` in the writer) is the helper's
    callers' business. Anything else is
    reported as unresolved, so an action computed some new way fails the test instead of
    slipping through."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.trees = {name: ast.parse(text, name) for name, text in sources.items()}
        self.constants: dict[str, ast.expr] = {}
        self.positions: dict[str, int] = {}  # helper name -> index of its "action" parameter
        for tree in self.trees.values():
            for node in tree.body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name) and target.id.isupper():
                        self.constants[target.id] = node.value
            for found in ast.walk(tree):
                if isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    params = [a.arg for a in found.args.posonlyargs + found.args.args]
                    if "action" in params:
                        offset = 1 if params[:1] == ["self"] else 0
                        self.positions[found.name] = params.index("action") - offset
        self.actions: set[str] = set()
        self.unresolved: list[str] = []

    def collect(self) -> ActionCollector:
        for name, tree in self.trees.items():
            self._visit(tree, name, params=set(), in_audit=False)
        return self

    def _visit(self, node: ast.AST, where: str, *, params: set[str], in_audit: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = {a.arg for a in child.args.posonlyargs + child.args.args + child.args.kwonlyargs}
                self._visit(child, where, params=inner, in_audit="audit" in child.name)
                continue
            if isinstance(child, ast.Call):
                self._call(child, where, params)
            if in_audit and isinstance(child, ast.Dict):
                for key, value in zip(child.keys, child.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "action":
                        self._resolve(value, where, params)
            self._visit(child, where, params=params, in_audit=in_audit)

    def _call(self, call: ast.Call, where: str, params: set[str]) -> None:
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if "audit" not in name:
            return
        for keyword in call.keywords:
            if keyword.arg == "action":
                self._resolve(keyword.value, where, params)
                return
        position = self.positions.get(name)
        if position is not None and position < len(call.args):
            self._resolve(call.args[position], where, params)

    def _resolve(self, node: ast.expr, where: str, params: set[str]) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            self.actions.add(node.value)
        elif isinstance(node, ast.IfExp):
            self._resolve(node.body, where, params)
            self._resolve(node.orelse, where, params)
        elif isinstance(node, ast.Name) and node.id in params:
            return  # a helper passing its parameter on
        elif isinstance(node, ast.Call) and any(
            isinstance(n, ast.Name) and n.id in params for arg in node.args for n in ast.walk(arg)
        ):
            return  # the same, through a function (the writer clips it: _clip(action, 100))
        elif isinstance(node, ast.Name) and node.id in self.constants:
            self._resolve(self.constants[node.id], where, params)
        elif isinstance(node, ast.Dict):
            for value in node.values:
                self._resolve(value, where, params)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in self.constants
        ):
            self._resolve(self.constants[node.func.value.id], where, params)
            for default in node.args[1:]:
                self._resolve(default, where, params)
        else:
            self.unresolved.append(f"{where}:{node.lineno}: {ast.unparse(node)}")


def _project_sources() -> dict[str, str]:
    files = [
        path
        for package in SOURCE_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if "migrations" not in path.parts
    ]
    return {str(path.relative_to(REPO)): path.read_text() for path in files}


def test_every_action_the_code_writes_has_a_label() -> None:
    found = ActionCollector(_project_sources()).collect()
    assert found.unresolved == []
    # the collector does see the actions written every way the code writes them
    assert {
        "user-profile-update",  # a literal keyword
        "login-throttled",  # a positional argument of a module's helper
        "application-update",  # the same, through another helper
        "email-template-create",  # one side of "a if created else b"
        "impersonation-misuse-reported",  # a module constant
        "audit-chain-verify",  # a constant imported from another module
        "resource-modification-via-impersonation",  # a mapping's value
        "resource-access-via-impersonation",  # its .get() default
    } <= found.actions
    assert len(found.actions) >= 50
    assert sorted(found.actions - set(ACTIONS)) == []


def test_the_collector_reports_an_action_without_a_label_and_one_it_cannot_read() -> None:
    source = (
        "DONE = 'gadget-done'\n"
        "def _audit(org, action, data):\n"
        "    audit_record(org=org, action=action, data=data)\n"
        "def work(kind):\n"
        "    audit_record(org=None, action='gadget-made')\n"
        "    _audit(None, DONE, {})\n"
        "    audit_refusal(action=f'gadget-{kind}')\n"
    )
    found = ActionCollector({"gadgets.py": source}).collect()
    assert found.actions == {"gadget-made", "gadget-done"}
    assert found.actions - set(ACTIONS) == {"gadget-made", "gadget-done"}
    assert found.unresolved == ["gadgets.py:7: f'gadget-{kind}'"]


def test_labels_say_when_it_was_done_while_impersonating() -> None:
    assert action_label("user-profile-update") == "Profile updated"
    assert action_label("user-profile-update", impersonated=True) == "Profile updated while impersonating"
    # about impersonation already: said once
    assert action_label("impersonation-start", impersonated=True) == "Impersonation started"
    assert (
        action_label("resource-modification-via-impersonation", impersonated=True)
        == "Changed while impersonating"
    )
    # an action this version does not know still reads as words
    assert action_label("gadget-polished") == "Gadget polished"


# --- the initiator ---------------------------------------------------------------------------


def _event(action: str, **fields: Any) -> AuditEvent:
    """An unsaved event with people given as users (id and label as audit_record writes them)."""
    values: dict[str, Any] = {"action": action, "data": fields.pop("data", {})}
    for role in ("actor", "impersonator", "subject"):
        person = fields.pop(role, None)
        if person is not None:
            values[f"{role}_id"] = person.pk
            label = person.username
            if person.display_name != person.username:
                label = f"{person.username} ({person.display_name})"
            values[f"{role}_label"] = label
    values.update(fields)
    return AuditEvent(**values)


def test_one_request_under_an_impersonation_has_one_initiator(world: World) -> None:
    # The service's event names the impersonated person as actor; the API call's names the
    # impersonator: both read "impersonator as target".
    change = _event(
        "user-profile-update", actor=world.target, impersonator=world.impersonator, subject=world.target
    )
    call = _event(
        "resource-modification-via-impersonation",
        actor=world.impersonator,
        impersonator=world.impersonator,
        subject=world.target,
    )
    assert initiator(change) == initiator(call) == "impersonator as target"


def test_initiator_without_an_impersonation(world: World) -> None:
    assert initiator(_event("role-assign", actor=world.admin, subject=world.target)) == "admin"
    assert initiator(_event("login-failure")) == "System"


def test_the_people_who_start_or_end_an_impersonation_act_as_themselves(world: World) -> None:
    start = _event("impersonation-start", actor=world.impersonator, impersonator=world.impersonator)
    assert initiator(start) == "impersonator"
    ended_by_target = _event(
        "impersonation-end", actor=world.target, impersonator=world.impersonator, subject=world.target
    )
    assert initiator(ended_by_target) == "target"
    assert sentence(ended_by_target) == "target ended the impersonation of target by impersonator."
    expired = _event("impersonation-end", impersonator=world.impersonator, subject=world.target)
    assert sentence(expired) == "The system ended the impersonation of target by impersonator."


# --- changes -----------------------------------------------------------------------------------


def _rows(event: AuditEvent, names: AuditNames | None = None) -> list[tuple[str, str | None, str]]:
    return [(c.field, c.before, c.after) for c in event_changes(event, names)]


def test_changes_under_a_changes_key() -> None:
    event = _event(
        "user-profile-update",
        data={
            "changes": {"given_name": {"from": "Alice", "to": "Alicia"}, "email": {"from": "", "to": "a@x"}}
        },
    )
    assert _rows(event) == [("Given name", "Alice", "Alicia"), ("Email", "(empty)", "a@x")]


def test_changes_as_top_level_diffs() -> None:
    event = _event("user-status-change", data={"is_locked": {"from": False, "to": True}})
    assert _rows(event) == [("Locked", "No", "Yes")]


def test_a_single_from_and_to_names_its_field() -> None:
    role = _event("role-update", data={"from": ["a"], "to": ["a", "b"]})
    assert _rows(role) == [("Permissions", "a", "a, b")]
    status = _event("organization-status-change", data={"from": "active", "to": "disabled"})
    assert _rows(status) == [("Status", "active", "disabled")]


def test_new_values_only_have_no_from() -> None:
    settings = _event(
        "organization-settings-update",
        data={"impersonation_max_minutes": 20, "impersonation_reason_required": None},
    )
    assert _rows(settings) == [
        ("Longest impersonation (minutes)", None, "20"),
        ("Reason required", None, "Inherited"),
    ]
    flow = _event("login-flow-update", data={"steps": [["BasicAuthenticator"], ["email-otp", "totp"]]})
    assert _rows(flow) == [("Login flow", None, "Step 1: BasicAuthenticator · Step 2: email-otp or totp")]


def test_events_that_change_nothing_have_no_rows(world: World) -> None:
    assert _rows(_event("login-success", data={"amr": ["pwd"]})) == []
    assert _rows(_event("role-assign", data={"role": "Helpers", "via_association": False})) == []


# --- through the services, with names ------------------------------------------------------------


def test_service_events_read_as_sentences_with_names(world: World) -> None:
    app = make_app(world, client_id="ledger").app
    start = AuditEvent.objects.filter(tenant=world.root).order_by("-seq").values_list("seq", flat=True)[0]
    role = role_create(
        actor=world.admin,
        org=world.root,
        name="Ledger clerks",
        audience_application=app,
        permissions=["internal_user_mgt_view"],
    )
    assert isinstance(role, Role)
    role_assign(actor=world.admin, role=role, org=world.root, user=world.target)
    application_update_general(
        actor=world.admin,
        application=app,
        name="App ledger",
        description="Books",
        discoverable=False,
        access_url="",
    )
    application_share(actor=world.admin, application=app, mode="selected", organizations=[world.eu])
    user_set_flags(actor=world.admin, user=world.target, is_locked=True)
    organization_settings_update(actor=world.admin, org=world.eu, impersonation_max_minutes=20)
    events = list(AuditEvent.objects.filter(tenant=world.root, seq__gt=start).order_by("seq"))
    views = {v.event.action: v for v in audit_event_views(events)}

    assert views["role-create"].sentence == "admin created the role Ledger clerks."
    assert views["role-assign"].sentence == "admin assigned the role Ledger clerks to target."
    update = views["application-update"]
    assert update.sentence == "admin updated the general settings of App ledger."
    assert ("Description", "(empty)", "Books") in [(c.field, c.before, c.after) for c in update.changes]
    assert update.application_name == "App ledger" and update.target_name == "App ledger"
    share = views["application-share"]
    assert [(c.field, c.after) for c in share.changes] == [
        ("Shared with", "Selected organizations"),
        ("Organizations", "Acme EU"),  # a name, not the organization's id
    ]
    locked = views["user-status-change"]
    assert locked.label == "Account status changed"
    assert [(c.field, c.before, c.after) for c in locked.changes] == [("Locked", "No", "Yes")]
    settings = views["organization-settings-update"]
    assert settings.sentence == "admin changed the impersonation settings of Acme EU."
    assert settings.org_name == "Acme EU"


def test_a_change_made_while_impersonating(world: World) -> None:
    user_profile_update(
        actor=world.target,
        user=world.target,
        impersonator=world.impersonator,
        given_name="Changed",
        family_name=world.target.family_name,
        email=world.target.email,
    )
    (view,) = audit_event_views([AuditEvent.objects.get(action="user-profile-update")])
    assert view.label == "Profile updated while impersonating"
    assert view.initiator == "impersonator as target"
    assert view.sentence == "impersonator as target updated the profile of target."
    assert [(c.field, c.before, c.after) for c in view.changes] == [("Given name", "Target", "Changed")]


def test_own_changes_read_as_their_own(world: World) -> None:
    user_profile_update(
        actor=world.target,
        user=world.target,
        impersonator=None,
        given_name="Tess",
        family_name=world.target.family_name,
        email=world.target.email,
    )
    view = describe(AuditEvent.objects.get(action="user-profile-update"))
    assert view.label == "Profile updated" and view.sentence == "target updated their profile."


def test_a_refused_api_call_says_so(world: World) -> None:
    event = _event(
        "resource-modification-via-impersonation",
        actor=world.impersonator,
        impersonator=world.impersonator,
        subject=world.target,
        outcome=AuditEvent.Outcome.FAILURE,
        target_id="/t/acme/scim2/Me",
        data={"httpMethod": "PATCH", "ResourcePath": "/t/acme/scim2/Me", "status": 403},
    )
    assert sentence(event) == (
        "impersonator as target changed /t/acme/scim2/Me (PATCH). It was refused (403)."
    )


def test_names_are_resolved_in_a_fixed_number_of_queries(world: World) -> None:
    apps = [make_app(world, client_id=f"bulk-{i}").app for i in range(6)]
    roles = [
        role_create(actor=None, org=world.root, name=f"Bulk role {i}", audience_application=None)
        for i in range(6)
    ]

    def write(n: int) -> list[AuditEvent]:
        made = []
        for i in range(n):
            made.append(
                audit_record(
                    org=[world.root, world.eu][i % 2],
                    action="role-update",
                    actor=world.admin,
                    target_type="role",
                    target_id=roles[i % 6].pk,
                    client_id=apps[i % 6].client_id,
                    data={"from": [], "to": []},
                )
            )
        return made

    def queries(events: list[AuditEvent]) -> int:
        with CaptureQueriesContext(connection) as ctx:
            views = audit_event_views(events)
        assert all(
            v.sentence.startswith("admin changed the permissions of the role Bulk role") for v in views
        )
        assert all(v.application_name and v.application_name.startswith("App bulk-") for v in views)
        return len(ctx.captured_queries)

    assert queries(write(2)) == queries(write(12)) == 3  # organizations, roles, applications


def test_names_never_come_from_another_tenant(world: World) -> None:
    from identity.services.tenants import tenant_bootstrap

    other, _admin = tenant_bootstrap(
        actor=None, name="Globex", handle="globex", admin_username="g-admin", admin_password="Xy7!" * 4
    )
    foreign = make_app(world, client_id="foreign").app
    foreign.organization = other.tenant
    foreign.save(update_fields=["organization"])
    event = audit_record(
        org=world.root,
        action="application-create",
        actor=world.admin,
        target_type="application",
        target_id="foreign",
    )
    (view,) = audit_event_views([event])
    assert "App foreign" not in view.sentence and view.sentence == "admin created the application foreign."


def test_the_api_call_actions_are_the_four_of_design_section_6() -> None:
    assert API_CALL_ACTIONS == {
        "resource-creation-via-impersonation",
        "resource-modification-via-impersonation",
        "resource-deletion-via-impersonation",
        "resource-access-via-impersonation",
    }


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_sentence_formats(action: str, world: World) -> None:
    event = _event(
        action, actor=world.admin, subject=world.target, target_type="x", target_id=str(uuid.uuid4())
    )
    text = sentence(event)
    assert text.endswith(".") and "{" not in text and "None" not in text


def test_request_context_ties_the_two_events_of_a_call(world: World) -> None:
    # (what the Access page relies on to show one entry per change)
    with context.bound(context.RequestContext(request_id="req-labels-0001")):
        first = audit_record(
            org=world.root, action="user-profile-update", actor=world.target, subject=world.target
        )
        second = audit_record(
            org=world.root,
            action="resource-modification-via-impersonation",
            actor=world.impersonator,
            subject=world.target,
        )
    assert first.request_id == second.request_id == "req-labels-0001"
