"""The statements of one token request (issue 15, the query diet): each grant stays under its
ceiling, and no statement is sent twice within one request.

Counted with Django's ``CaptureQueriesContext`` around one request through the test client.
SAVEPOINT / RELEASE statements are counted apart: the test runs inside a transaction, so the
token request's own transaction shows as one savepoint pair here (in production it is the
transaction itself: BEGIN and COMMIT, which the capture does not see); any further pair is a
savepoint the grant itself makes (the token exchange keeps one: a refused start rolls back,
the used-up subject token stays used).

The ceilings are for PostgreSQL, where several writes that belong together are one statement
(the access and refresh tokens with a new authorization; the audit event with its chain head;
a refresh token retired with its access token); on SQLite they are separate statements.
``ACTAS_DUMP_QUERIES=<dir>`` writes each request's statements to ``<dir>/<grant>.sql``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.models import Role
from identity.services.roles import role_assign
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import App, authorize_url, basic, exchange, get_code, make_app, pkce_pair
from tests.impersonation.helpers import exchange_tokens, get_subject_token, impersonation_app

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the ceilings are PostgreSQL's"),
]

# Statements per request, savepoints apart (issue 15's targets: 4 / 10 / 14 / 18 / 12).
CEILINGS = {
    "client_credentials": 4,
    "authorization_code": 10,
    "refresh_token": 14,
    "token_exchange": 18,
    "organization_switch": 12,
}
# Savepoint pairs the grant makes inside the request's transaction.
GRANT_SAVEPOINTS = {"token_exchange": 1}
# An organization switch re-checks the impersonation, whose dominance check reads, per
# distinct (application, organization) of a shared role the subject holds, that application
# and organization (identity.selectors.permission_map): two statements each.
PER_SHARED_ROLE = 2

SAVEPOINT = re.compile(r"^\s*(SAVEPOINT|RELEASE SAVEPOINT|ROLLBACK TO SAVEPOINT)\b", re.I)


@dataclass(frozen=True)
class Measured:
    statements: list[str]
    savepoints: int

    @property
    def count(self) -> int:
        return len(self.statements)


def measure(name: str, request: Callable[[], Any]) -> Measured:
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == 200, response.content[:300]
    sql = [q["sql"] for q in captured.captured_queries]
    statements = [s for s in sql if not SAVEPOINT.match(s)]
    savepoints = sum(1 for s in sql if s.lstrip().upper().startswith("SAVEPOINT"))
    dump = os.environ.get("ACTAS_DUMP_QUERIES", "")
    if dump:
        Path(dump, f"{name}.sql").write_text("\n\n".join(sql))
    print(f"{name}: {len(statements)} statements, {savepoints} savepoint(s)")  # noqa: T201
    return Measured(statements=statements, savepoints=savepoints)


def assert_no_repeats(measured: Measured) -> None:
    """No statement text (with its parameters) is sent twice within one request."""
    repeated = {sql: n for sql, n in Counter(measured.statements).items() if n > 1}
    assert not repeated, "\n\n".join(f"{n}x {sql[:400]}" for sql, n in repeated.items())


def check(name: str, measured: Measured, *, extra: int = 0) -> None:
    assert_no_repeats(measured)
    assert measured.count <= CEILINGS[name] + extra, (name, measured.count, measured.statements)
    # One pair is the request's own transaction (a savepoint inside the test's).
    assert measured.savepoints - 1 <= GRANT_SAVEPOINTS.get(name, 0), (name, measured.savepoints)


def test_client_credentials(world: World) -> None:
    app = make_app(world, client_id="cc", grant_types=("client_credentials",))
    client = Client()

    def request() -> Any:
        return client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "client_credentials", "scope": "internal_user_mgt_view"},
            HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
        )

    check("client_credentials", measure("client_credentials", request))


def test_authorization_code(world: World) -> None:
    app = make_app(world)
    client = Client()
    code, verifier = get_code(client, world, app)
    check("authorization_code", measure("authorization_code", lambda: exchange(client, app, code, verifier)))


# The authorize endpoint of a signed-in user whose application skips consent: the endpoint's
# tenant, the client with the tenant (once for both of oauthlib's passes), the browser's session,
# its user and its SSO session (middleware), the login flow, the impersonation bound to the
# sign-in (none here), and the code with its authorization.
AUTHORIZE_CEILING = 9


def test_authorize_of_a_signed_in_user(world: World) -> None:
    app = make_app(world)
    client = Client()
    sign_in(client, world.target)
    _verifier, challenge = pkce_pair()
    with CaptureQueriesContext(connection) as captured:
        response = client.get(authorize_url(app.client_id, challenge=challenge))
    assert response.status_code == 302 and "code=" in response["Location"], response.content[:300]
    statements = [q["sql"] for q in captured.captured_queries if not SAVEPOINT.match(q["sql"])]
    print(f"authorize: {len(statements)} statements")  # noqa: T201
    if os.environ.get("ACTAS_DUMP_QUERIES"):
        Path(os.environ["ACTAS_DUMP_QUERIES"], "authorize.sql").write_text("\n\n".join(statements))
    assert_no_repeats(Measured(statements=statements, savepoints=0))
    assert len(statements) <= AUTHORIZE_CEILING, statements


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


def test_token_exchange(world: World, pickup: App) -> None:
    client = Client()
    artifacts = get_subject_token(client, world, pickup)
    check("token_exchange", measure("token_exchange", lambda: exchange_tokens(client, pickup, artifacts)))


def _refresh(client: Client, pickup: App, state: dict[str, str]) -> Any:
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": state["refresh"]},
        HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
    )
    body = response.json()
    state["refresh"], state["access"] = body.get("refresh_token", ""), body.get("access_token", "")
    return response


def test_impersonated_refresh_keeps_act(world: World, pickup: App) -> None:
    client = Client()
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    state = {"refresh": body["refresh_token"]}
    check("refresh_token", measure("refresh_token_first", lambda: _refresh(client, pickup, state)))
    # A later rotation of the family (its authorization's first access token is gone).
    check("refresh_token", measure("refresh_token", lambda: _refresh(client, pickup, state)))


def _switch(client: Client, pickup: App, token: str, world: World) -> Any:
    return client.post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "organization_switch",
            "token": token,
            "switching_organization": str(world.eu.pk),
            "scope": "openid internal_user_mgt_view",
        },
        HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
    )


def test_organization_switch_of_an_impersonated_token(world: World, pickup: App) -> None:
    client = Client()
    token = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()["access_token"]
    measured = measure("organization_switch", lambda: _switch(client, pickup, token, world))
    check("organization_switch", measured)


def test_organization_switch_where_the_subject_holds_a_shared_role(world: World, pickup: App) -> None:
    viewer = Role.objects.get(name="pickup viewer")
    role_assign(actor=None, role=viewer, org=world.eu, user=world.target)
    client = Client()
    token = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()["access_token"]
    measured = measure("organization_switch_shared_role", lambda: _switch(client, pickup, token, world))
    check("organization_switch", measured, extra=PER_SHARED_ROLE)
