"""Impersonation services under concurrency, and the changes that end a live impersonation
where they happen (issue 13)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.audit.models import AuditEvent
from identity.models import APIResource, Application, Role, User
from identity.services.application_edits import (
    application_remove_api_authorization,
    application_update_protocol,
)
from identity.services.applications import application_authorize_api, application_share
from identity.services.resources import ScopeSpec, api_resource_create
from identity.services.roles import role_assign, role_create, role_set_permissions, role_unassign
from identity.services.sessions import sso_session_start
from identity.services.users import user_set_flags
from impersonation import policy
from impersonation.models import ImpersonationSession, SubjectToken
from impersonation.selectors import active_impersonations
from impersonation.services import impersonation_begin
from organizations.models import Organization
from organizations.services import organization_set_status
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import App, basic, exchange, get_code
from tests.impersonation.helpers import (
    Artifacts,
    exchange_tokens,
    get_subject_token,
    impersonation_app,
    impersonator_role,
    subject_authorize_url,
)

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's"
)


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


class _Collect(logging.Handler):
    """Every log record of every thread (pytest's caplog is per test, but threads log too)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _exchange_at_once(app: App, pairs: list[Artifacts]) -> list[Any]:
    """Exchange every pair from its own thread (own client, own database connection), all
    released at the same moment."""
    barrier = threading.Barrier(len(pairs))
    answers: list[Any] = [None] * len(pairs)

    def run(i: int) -> None:
        try:
            client = Client(raise_request_exception=False)
            barrier.wait()
            answers[i] = exchange_tokens(client, app, pairs[i])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pairs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "an exchange stalled"
    return answers


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_subject_tokens_of_one_sign_in_exchanged_at_once_start_exactly_one_impersonation(
    world: World, pickup: App
) -> None:
    """Several subject tokens of one sign-in, exchanged at the same moment, 50 times: one
    exchange wins, every other one gets the documented JSON error and an audited refusal —
    never a deadlock, a 500 or a second impersonation."""
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    try:
        for round_ in range(50):
            browser = sign_in(Client(), world.impersonator)
            pairs = [get_subject_token(browser, world, pickup, signed_in=True) for _ in range(3)]
            refusals_before = AuditEvent.objects.filter(action="impersonation-refused").count()
            answers = _exchange_at_once(pickup, pairs)
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [200, 400, 400], (round_, [(a.status_code, a.content[:200]) for a in answers])
            for answer in answers:
                assert answer["Content-Type"].startswith("application/json")
                if answer.status_code == 400:
                    assert answer.json()["error"] == "invalid_request"
            live = ImpersonationSession.objects.filter(impersonator=world.impersonator, ended_at__isnull=True)
            assert live.count() == 1
            assert AuditEvent.objects.filter(action="impersonation-refused").count() == refusals_before + 2
            # The next round starts from a clean slate: end this one.
            assert browser.post("/t/acme/impersonation/end").status_code in (200, 302, 303)
            assert not live.exists()
    finally:
        logging.getLogger().removeHandler(collect)
    messages = [r.getMessage() for r in collect.records] + [
        str(r.exc_info[1]) for r in collect.records if r.exc_info and r.exc_info[1]
    ]
    assert not [m for m in messages if "deadlock" in m.lower()]
    assert not [r for r in collect.records if r.name == "django.request" and r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "invisible",
    [
        "\u200b",  # zero-width space
        "\u200b\u200b\u200b",
        "\ufeff\u2060",  # byte-order mark, word joiner
        "\u3164",  # Hangul filler
        "\u2800 \u2800",  # blank braille patterns
        "\u202e\u202c",  # bidirectional override and pop
        "\u0301",  # a combining accent on nothing
    ],
)
def test_a_reason_of_invisible_characters_is_no_reason(
    client: Client, world: World, pickup: App, invisible: str
) -> None:
    """Where a reason is required, it must show something: the confirmation page refuses a
    reason a reader of the audit trail or the email would see as blank."""
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target))
    response = client.post(
        page.context["action"],
        {"pending": page.context["pending"], "decision": "impersonate", "reason": invisible},
    )
    assert response.status_code == 400
    assert "invisible characters alone" in response.content.decode()
    assert not SubjectToken.objects.exists()


def test_a_visible_reason_is_kept_without_its_invisible_characters(
    client: Client, world: World, pickup: App
) -> None:
    artifacts = get_subject_token(client, world, pickup, reason="\u202eTicket\u200b 42\u202c")
    assert exchange_tokens(Client(), pickup, artifacts).status_code == 200
    session = ImpersonationSession.objects.get(subject=world.target)
    assert session.reason == "Ticket 42"
    start = AuditEvent.objects.get(action="impersonation-start", target_id=str(session.pk))
    assert start.data["reason"] == "Ticket 42"


def test_the_service_refuses_an_invisible_reason_whoever_calls_it(world: World, pickup: App) -> None:
    """Not only the pages: the start itself refuses a blank reason where one is required."""
    session = sso_session_start(user=world.impersonator, org=world.root, amr=["pwd"])
    with pytest.raises(policy.Refused) as refused:
        impersonation_begin(
            actor=world.impersonator,
            subject_id=str(world.target.pk),
            org=world.root,
            application=pickup.app,
            sso_session=session,
            reason="\u200b \u200b",
            read_only=False,
            channel=ImpersonationSession.Channel.CONSOLE,
        )
    assert refused.value.code == "reason-required"
    assert not ImpersonationSession.objects.exists()


# --- changes that end a live impersonation where they happen --------------------------------


def _code_flow_token(world: World, app: App, user: User, org: Organization) -> str:
    """An ordinary access token: ``user`` signs in at ``org`` and the app redeems its code."""
    browser = Client()
    code, verifier = get_code(browser, world, app, user=user, org=org)
    base = "/t/acme" if org.pk == world.root.pk else f"/t/acme/o/{org.pk}"
    answer = exchange(browser, app, code, verifier, base=base)
    assert answer.status_code == 200, answer.content
    return str(answer.json()["access_token"])


def _bearer(client: Client, path: str, token: str) -> int:
    return int(client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}").status_code)


def _introspected(client: Client, app: App, token: str) -> bool:
    answer = client.post(
        "/t/acme/oauth2/introspect", {"token": token}, HTTP_AUTHORIZATION=basic(app.client_id, app.secret)
    )
    return bool(answer.json()["active"])


def _accepted_at(client: Client, app: App, *, access: str, switched: str) -> dict[str, bool]:
    """Where the impersonation's access token and its switched Acme EU token are accepted."""
    return {
        "userinfo": _bearer(client, "/t/acme/oauth2/userinfo", access) == 200,
        "scim-me": _bearer(client, "/t/acme/scim2/Me", access) == 200,
        "me-organizations": _bearer(client, "/t/acme/api/users/v1/me/organizations", access) == 200,
        "introspection": _introspected(client, app, access),
        "switched-scim-me": _bearer(client, "/t/acme/o/scim2/Me", switched) == 200,
        "switched-introspection": _introspected(client, app, switched),
    }


def _protocol(app: App, **changes: Any) -> None:
    """Save the application's Protocol tab with ``changes`` over its current values."""
    current = Application.objects.get(pk=app.app.pk)
    values: dict[str, Any] = {
        "client_type": current.client_type,
        "grant_types": list(current.grant_types),
        "redirect_uris": current.redirect_uris.split(),
        "post_logout_redirect_uris": current.post_logout_redirect_uris.split(),
        "pkce_required": current.pkce_required,
        "access_token_lifetime": current.access_token_lifetime,
        "refresh_token_lifetime": current.refresh_token_lifetime,
        "id_token_lifetime": current.id_token_lifetime,
        "subject_token_enabled": current.subject_token_enabled,
        "subject_token_expiry": current.subject_token_expiry,
    }
    values.update(changes)
    application_update_protocol(actor=None, application=current, **values)


def _promote_target(world: World, app: App) -> None:
    """The target gets a permission their impersonator does not hold."""
    resource = api_resource_create(
        actor=None,
        tenant=world.root,
        identifier="https://api.example/payroll",
        name="Payroll",
        scopes=[ScopeSpec("payroll_admin")],
    )
    application_authorize_api(actor=None, application=app.app, resource=resource, scopes=["payroll_admin"])
    role = role_create(
        actor=None,
        org=world.root,
        name="Payroll",
        audience_application=app.app,
        permissions=["payroll_admin"],
    )
    role_assign(actor=None, role=role, org=world.root, user=world.target)


CHANGES: dict[str, tuple[str | tuple[str, ...], Any]] = {
    "impersonator deactivated": (
        "impersonator-inactive",
        lambda world, app: user_set_flags(actor=world.admin, user=world.impersonator, is_active=False),
    ),
    "impersonator locked": (
        "impersonator-inactive",
        lambda world, app: user_set_flags(actor=world.admin, user=world.impersonator, is_locked=True),
    ),
    "impersonator loses the role": (
        ("dominance", "no-permission"),  # the role also held what made them dominate
        lambda world, app: role_unassign(
            actor=world.admin, role=impersonator_role(), org=world.root, user=world.impersonator
        ),
    ),
    "role loses the impersonate permission": (
        "no-permission",
        lambda world, app: role_set_permissions(
            actor=world.admin,
            role=impersonator_role(),
            org=world.root,
            permissions=["internal_user_mgt_view"],
        ),
    ),
    "target promoted": ("dominance", _promote_target),
    "target protected": (
        "subject-protected",
        lambda world, app: user_set_flags(actor=world.admin, user=world.target, is_protected=True),
    ),
    "target deactivated": (
        "subject-disabled",
        lambda world, app: user_set_flags(actor=world.admin, user=world.target, is_active=False),
    ),
    # The Protocol tab's one Impersonation switch: subject tokens and the token-exchange grant
    # go off together (the grant cannot be removed on its own while the switch is on).
    "impersonation switched off": (
        "application-impersonation-off",
        lambda world, app: _protocol(app, subject_token_enabled=False),
    ),
    "impersonate scope unticked on the API authorization": (
        "no-permission",
        lambda world, app: application_authorize_api(
            actor=world.admin,
            application=app.app,
            resource=APIResource.objects.get(tenant=world.root, identifier="system:impersonation"),
            scopes=[],
        ),
    ),
    "impersonation API unauthorized": (
        "no-permission",
        lambda world, app: application_remove_api_authorization(
            actor=world.admin,
            application=app.app,
            resource=APIResource.objects.get(tenant=world.root, identifier="system:impersonation"),
        ),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_that_takes_away_the_grounds_ends_the_impersonation_at_once(
    client: Client, world: World, pickup: App, change: str
) -> None:
    """Not at the next mint: the service that makes the change ends the impersonation in the
    same transaction, so every token of it stops at every endpoint at once."""
    role_assign(actor=None, role=Role.objects.get(name="pickup viewer"), org=world.eu, user=world.target)
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    switched = client.post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": body["access_token"],
            "switching_organization": str(world.eu.pk),
            "scope": "openid internal_user_mgt_view",
        },
        HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
    ).json()
    probe = Client()
    before = _accepted_at(probe, pickup, access=body["access_token"], switched=switched["access_token"])
    assert all(before.values()), before
    session = ImpersonationSession.objects.get()
    assert [s.pk for s in active_impersonations(org=world.root)] == [session.pk]

    code, make_change = CHANGES[change]
    make_change(world, pickup)

    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == ImpersonationSession.EndReason.POLICY
    end = AuditEvent.objects.get(action="impersonation-end", target_id=str(session.pk))
    assert end.data["reason"] == "policy" and end.data["cause"] in (
        code if isinstance(code, tuple) else (code,)
    )
    assert session.sso_session.ended_at is not None  # the browser's binding is released
    assert active_impersonations(org=world.root) == []
    after = _accepted_at(probe, pickup, access=body["access_token"], switched=switched["access_token"])
    assert not any(after.values()), after
    for refresh in (body["refresh_token"], switched.get("refresh_token")):
        if refresh:
            answer = probe.post(
                "/t/acme/oauth2/token",
                {"grant_type": "refresh_token", "refresh_token": refresh},
                HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
            )
            assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    again = probe.post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": body["access_token"],
            "switching_organization": str(world.eu.pk),
        },
        HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_a_change_that_leaves_the_grounds_ends_nothing(client: Client, world: World, pickup: App) -> None:
    """A role given to the impersonator, or taken from the target, changes nothing."""
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    role_unassign(actor=None, role=Role.objects.get(name="pickup viewer"), org=world.root, user=world.target)
    user_set_flags(actor=None, user=world.eu_user, is_active=False)
    assert ImpersonationSession.objects.get().ended_at is None
    assert _introspected(Client(), pickup, body["access_token"])


def test_disabling_an_organization_ends_its_impersonations_and_stops_its_tokens(
    client: Client, world: World, pickup: App
) -> None:
    """eu-admin impersonates eu-user in Acme EU; Acme's own token of the target, switched into
    Acme EU Sales, is an ordinary token below it. Disabling Acme EU ends the first and stops
    the second at once."""
    role_assign(actor=None, role=impersonator_role(), org=world.eu, user=world.eu_admin)
    role_assign(actor=None, role=Role.objects.get(name="pickup viewer"), org=world.eu, user=world.eu_user)
    browser = Client()
    artifacts = get_subject_token(
        browser,
        world,
        pickup,
        subject=world.eu_user,
        impersonator=world.eu_admin,
        org=world.eu,
        scope="openid internal_org_user_impersonate internal_user_mgt_view",
    )
    eu_base = f"/t/acme/o/{world.eu.pk}"
    body = exchange_tokens(browser, pickup, artifacts, base=eu_base).json()
    assert "access_token" in body, body
    # An ordinary token of Acme EU Sales: the sales user's own sign-in there.
    own = _code_flow_token(world, pickup, world.sales_user, world.sales)
    probe = Client()
    assert _introspected(probe, pickup, body["access_token"]) and _introspected(probe, pickup, own)
    assert _bearer(probe, "/t/acme/oauth2/userinfo", own) == 200

    organization_set_status(actor=world.admin, org=world.eu, status=Organization.Status.DISABLED)

    session = ImpersonationSession.objects.get()
    assert session.ended_at is not None and session.end_reason == "policy"
    end = AuditEvent.objects.get(action="impersonation-end", target_id=str(session.pk))
    assert end.data["cause"] == "org-inactive"
    assert not _introspected(probe, pickup, body["access_token"])
    assert not _introspected(probe, pickup, own)  # an ancestor is disabled
    assert _bearer(probe, "/t/acme/oauth2/userinfo", own) == 401
    # Enabled again, the ordinary token works again; the impersonation stays ended.
    organization_set_status(actor=world.admin, org=world.eu, status=Organization.Status.ACTIVE)
    assert _bearer(probe, "/t/acme/oauth2/userinfo", own) == 200
    assert ImpersonationSession.objects.get().ended_at is not None


def test_token_checks_cost_one_indexed_query_at_most_for_a_child_organization(
    client: Client, world: World, pickup: App
) -> None:
    """Root-organization tokens cost no query more than before; a child organization's token
    one (its organization and ancestors active), whatever the depth of the tree."""
    root_token = _code_flow_token(world, pickup, world.target, world.root)
    eu_token = _code_flow_token(world, pickup, world.eu_user, world.eu)
    sales_token = _code_flow_token(world, pickup, world.sales_user, world.sales)
    counts = {}
    for name, token in (("root", root_token), ("eu", eu_token), ("sales", sales_token)):
        probe = Client()
        with CaptureQueriesContext(connection) as queries:
            assert _bearer(probe, "/t/acme/oauth2/userinfo", token) == 200
        counts[name] = len(queries)
    assert counts["eu"] == counts["root"] + 1 == counts["sales"], counts


def test_withdrawing_the_applications_sharing_ends_the_impersonations_it_allowed(
    client: Client, world: World, pickup: App
) -> None:
    role_assign(actor=None, role=impersonator_role(), org=world.eu, user=world.eu_admin)
    artifacts = get_subject_token(
        Client(),
        world,
        pickup,
        subject=world.eu_user,
        impersonator=world.eu_admin,
        org=world.eu,
        scope="openid internal_org_user_impersonate",
    )
    body = exchange_tokens(Client(), pickup, artifacts, base=f"/t/acme/o/{world.eu.pk}").json()
    assert _introspected(Client(), pickup, body["access_token"])
    application_share(actor=world.admin, application=pickup.app, mode=Application.SharedAccess.NONE)
    session = ImpersonationSession.objects.get()
    assert session.ended_at is not None
    end = AuditEvent.objects.get(action="impersonation-end", target_id=str(session.pk))
    assert end.data["cause"] in ("application-unavailable", "no-permission")
    assert not _introspected(Client(), pickup, body["access_token"])
