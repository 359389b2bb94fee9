"""The token path's plain-SQL reads (identity.oauth.rows, .queries, .service and the
organization switch's) give the same model instances as the plain querysets."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import models
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from identity.models import Application, OAuthAuthorization, User
from identity.oauth.queries import refresh_lookup
from identity.oauth.service import presented_client_id, token_context
from impersonation.grants import switch_organizations
from organizations.models import Organization
from organizations.services import organization_set_status
from tests.conftest import World
from tests.identity.oauth_helpers import basic, get_code, make_app
from tests.impersonation.helpers import exchange_tokens, get_subject_token, impersonation_app

pytestmark = pytest.mark.django_db


def same(found: models.Model | None, expected: models.Model) -> None:
    assert found is not None
    assert type(found) is type(expected)
    for f in expected._meta.concrete_fields:
        got, want = getattr(found, f.attname), getattr(expected, f.attname)
        assert got == want and type(got) is type(want), (f.attname, got, want)


def test_token_context_reads_the_tenant_and_its_client_as_the_orm_does(world: World) -> None:
    app = make_app(world, client_id="cc", grant_types=("client_credentials",))
    context = token_context(tenant_handle="acme", org_id=None, client_id="cc")
    assert context is not None
    same(context.tenant, Organization.objects.get(pk=world.root.pk))
    assert context.org.pk == world.root.pk
    same(context.client, Application.objects.get(pk=app.app.pk))
    assert context.client is not None
    same(context.client.organization, Organization.objects.get(pk=app.app.organization_id))


def test_token_context_knows_no_client_of_another_tenant_and_no_unknown_tenant(world: World) -> None:
    make_app(world, client_id="cc", grant_types=("client_credentials",))
    context = token_context(tenant_handle="acme", org_id=None, client_id="nobody")
    assert context is not None and context.client is None
    assert token_context(tenant_handle="no-such-tenant", org_id=None, client_id="cc") is None
    child = token_context(tenant_handle="acme", org_id=world.eu.pk, client_id="cc")
    assert child is not None and child.org.pk == world.eu.pk
    organization_set_status(actor=None, org=world.eu, status=Organization.Status.DISABLED)
    assert token_context(tenant_handle="acme", org_id=world.eu.pk, client_id="cc") is None


def test_presented_client_id() -> None:
    header = basic("my app", "secret")
    assert presented_client_id({"Authorization": header}, {"client_id": "other"}) == "my app"
    assert presented_client_id({}, {"client_id": "pickup"}) == "pickup"
    assert presented_client_id({"Authorization": "Basic !!!"}, {}) == ""


def _impersonated_refresh(world: World) -> tuple[str, Any]:
    pickup = impersonation_app(world)
    client = Client()
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    return body["refresh_token"], pickup


def test_refresh_lookup_reads_the_token_and_its_authorization_as_the_orm_does(world: World) -> None:
    raw, _pickup = _impersonated_refresh(world)
    found = refresh_lookup(raw)
    assert found is not None
    rt, authorization = found
    expected = RefreshToken.objects.select_related("access_token", "user").get(pk=rt.pk)
    same(rt, expected)
    assert expected.access_token is not None and rt.access_token is not None
    same(rt.access_token, AccessToken.objects.get(pk=expected.access_token.pk))
    same(rt.user, User.objects.get(pk=expected.user_id))
    want = OAuthAuthorization.objects.select_related("organization", "sso_session", "impersonator").get(
        refresh_family=rt.token_family
    )
    same(authorization, want)
    assert authorization is not None
    same(authorization.organization, want.organization)
    assert want.sso_session is not None and want.impersonator is not None
    same(authorization.sso_session, want.sso_session)
    same(authorization.impersonator, want.impersonator)
    assert refresh_lookup("no-such-token") is None


def test_switch_organizations_reads_as_the_selectors_do(world: World) -> None:
    member = switch_organizations(
        tenant=world.root, source_id=str(world.root.pk), target_id=str(world.eu.pk), user=world.eu_user
    )
    assert member is not None
    source, target = member
    same(source, Organization.objects.get(pk=world.root.pk))
    same(target, Organization.objects.get(pk=world.eu.pk))
    # Not a member there (neither resident nor shared in), an unknown id, a disabled target.
    assert (
        switch_organizations(
            tenant=world.root, source_id=str(world.root.pk), target_id=str(world.eu.pk), user=world.sales_user
        )
        is None
    )
    assert (
        switch_organizations(tenant=world.root, source_id="x", target_id=str(world.eu.pk), user=world.eu_user)
        is None
    )
    organization_set_status(actor=None, org=world.eu, status=Organization.Status.DISABLED)
    assert (
        switch_organizations(
            tenant=world.root, source_id=str(world.root.pk), target_id=str(world.eu.pk), user=world.eu_user
        )
        is None
    )


def test_a_code_is_claimed_once_and_read_as_the_orm_does(world: World) -> None:
    from oauth2_provider.models import Grant

    from identity.oauth import claims as oauth_claims
    from identity.oauth.queries import code_claim, grant_by_code

    app = make_app(world)
    code, _verifier = get_code(Client(), world, app)
    grant = grant_by_code(code)
    expected_grant = Grant.objects.select_related("user").get(code=code)
    same(grant, expected_grant)
    assert grant is not None and expected_grant.user is not None
    same(grant.user, expected_grant.user)
    assert grant_by_code("no-such-code") is None

    checksum = oauth_claims.token_checksum(code)
    claimed = code_claim(checksum, app.app)
    want = OAuthAuthorization.objects.select_related("organization", "sso_session").get(
        code_checksum=checksum
    )
    same(claimed, want)
    assert claimed is not None and want.code_used_at is not None
    same(claimed.organization, want.organization)
    assert want.sso_session is not None
    same(claimed.sso_session, want.sso_session)
    # Used once: a second presentation claims nothing.
    assert code_claim(checksum, app.app) is None
