"""Queries per token request are bounded: every grant the server issues makes the same number
of queries however many roles, scopes, organizations and earlier tokens there are.

Each case runs one request, grows the data it could be tempted to iterate over (more roles of
the user and of the impersonator, more authorized scopes, more organizations, more tokens of
the same client), runs the same request again and compares the two query counts with each
other and, on PostgreSQL (where writes that belong together are one statement), with the
ceiling the server was measured at (tests/identity/test_token_queries.py asserts issue 15's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from identity.models import APIResource, Application, Role
from identity.services.applications import application_authorize_api
from identity.services.resources import ScopeSpec, api_resource_create
from identity.services.roles import role_assign, role_create
from identity.services.users import user_create
from organizations.services import organization_create
from tests.conftest import PASSWORD, World
from tests.identity.oauth_helpers import App, basic, exchange, get_code, make_app
from tests.impersonation.helpers import exchange_tokens, get_subject_token, impersonation_app

pytestmark = pytest.mark.django_db

# What each grant costs today, savepoints included (the test's transaction makes the token
# request's own one a savepoint pair; tests/identity/test_token_queries.py counts them apart);
# a change that adds a query per request has to raise these on purpose.
CEILINGS = {
    "client_credentials": 5,
    "authorization_code": 9,
    # An impersonated refresh writes its audit event (chain head lock, event with head).
    "refresh_token": 16,
    "token_exchange": 21,
    "organization_switch": 16,
}


def _bounded(grant: str, before: int, after: int) -> None:
    """The same count before and after the data grew; under the ceiling on PostgreSQL (where
    writes that belong together are one statement; SQLite makes them one at a time)."""
    assert before == after, (before, after)
    if connection.vendor == "postgresql":
        assert after <= CEILINGS[grant], (grant, after)


def _queries(request: Callable[[], Any]) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == 200, response.content[:300]
    return len(captured.captured_queries)


def _grow(world: World, app: App, *, n: int = 6) -> None:
    """More of everything a token request could loop over: authorized scopes, roles of the
    target and of the impersonator holding them, organizations, other users."""
    resource = api_resource_create(
        actor=None,
        tenant=world.root,
        identifier=f"https://api.example/{app.client_id}",
        name=f"Orders for {app.client_id}",
        scopes=[ScopeSpec(f"orders_{i}") for i in range(n)],
    )
    application_authorize_api(
        actor=None, application=app.app, resource=resource, scopes=[f"orders_{i}" for i in range(n)]
    )
    for i in range(n):
        role = role_create(
            actor=None,
            org=world.root,
            name=f"{app.client_id} orders {i}",
            audience_application=app.app,
            permissions=[f"orders_{i}"],
        )
        # The impersonator first: a target holding a permission their impersonator lacks, even
        # for a moment, ends the impersonation at once.
        role_assign(actor=None, role=role, org=world.root, user=world.impersonator)
        role_assign(actor=None, role=role, org=world.root, user=world.target)
        org = organization_create(
            actor=None, parent=world.root, name=f"Branch {app.client_id} {i}", handle=f"b-{app.client_id}-{i}"
        )
        user_create(actor=None, org=org, username=f"u{i}-{app.client_id}", password=PASSWORD)


def test_client_credentials_queries_are_bounded(world: World) -> None:
    app = make_app(world, client_id="cc", grant_types=("client_credentials",))
    client = Client()

    def request() -> Any:
        return client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "client_credentials", "scope": "internal_user_mgt_view"},
            HTTP_AUTHORIZATION=basic(app.client_id, app.secret),
        )

    before = _queries(request)
    _grow(world, app)
    after = _queries(request)
    _bounded("client_credentials", before, after)


def test_authorization_code_queries_are_bounded(world: World) -> None:
    app = make_app(world)
    client = Client()
    code, verifier = get_code(client, world, app)
    before = _queries(lambda: exchange(client, app, code, verifier))
    _grow(world, app)
    code, verifier = get_code(client, world, app, signed_in=True)
    after = _queries(lambda: exchange(client, app, code, verifier))
    _bounded("authorization_code", before, after)


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


def test_token_exchange_queries_are_bounded(world: World, pickup: App) -> None:
    first, second = Client(), Client()
    artifacts = get_subject_token(first, world, pickup)
    before = _queries(lambda: exchange_tokens(first, pickup, artifacts))
    _grow(world, pickup)
    artifacts = get_subject_token(second, world, pickup)
    after = _queries(lambda: exchange_tokens(second, pickup, artifacts))
    _bounded("token_exchange", before, after)


def test_impersonated_refresh_queries_are_bounded(world: World, pickup: App) -> None:
    client = Client()
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    state = {"refresh": body["refresh_token"]}

    def request() -> Any:
        response = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": state["refresh"]},
            HTTP_AUTHORIZATION=basic(pickup.client_id, pickup.secret),
        )
        state["refresh"] = response.json().get("refresh_token", "")
        return response

    before = _queries(request)
    _grow(world, pickup)
    for _ in range(3):  # earlier rotations of the family are not read again
        request()
    after = _queries(request)
    _bounded("refresh_token", before, after)


def test_organization_switch_queries_are_bounded(world: World, pickup: App) -> None:
    viewer = Role.objects.get(name="pickup viewer")
    role_assign(actor=None, role=viewer, org=world.eu, user=world.target)
    client = Client()
    token = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()["access_token"]

    def request() -> Any:
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

    before = _queries(request)
    _grow(world, pickup)
    after = _queries(request)
    _bounded("organization_switch", before, after)


def test_the_permission_selector_makes_a_fixed_number_of_queries(world: World) -> None:
    """``user_scopes_for_application`` — the one permission question every grant asks — makes
    the same queries for a user with one role as for one with many, in a root organization
    and below it (two more at most: the path, and whether the application is shared there —
    remembered on the application once asked)."""
    from identity.selectors.permissions import user_scopes_for_application

    app = make_app(world)
    counts = []
    for grow in (False, True):
        if grow:
            _grow(world, app, n=10)
        for org in (world.root, world.eu):
            with CaptureQueriesContext(connection) as captured:
                user_scopes_for_application(user=world.target, application=app.app, org=org)
            counts.append(len(captured.captured_queries))
    root_before, child_before, root_after, child_after = counts
    assert root_before == root_after == 1, counts
    assert child_after <= child_before <= 3, counts
    assert Application.objects.filter(client_id="pickup").exists()
    assert APIResource.objects.filter(identifier="https://api.example/pickup").exists()
