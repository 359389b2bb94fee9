"""The reference's integration scenarios, with Authlib as the client against a live actas."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from identity.models import Application, Role
from identity.services.applications import application_share
from identity.services.loginflows import login_flow_set
from identity.services.roles import role_assign
from tests.conftest import PASSWORD, World
from tests.identity.oauth_helpers import REDIRECT, SECRET
from tests.impersonation.helpers import AT, ID, JWT, TX, impersonation_app, subject_authorize_url

pytestmark = pytest.mark.django_db(transaction=True)


def _csrf(html: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert match is not None
    return match.group(1)


def _sign_in(browser: requests.Session, base: str, path: str, steps: list[dict[str, str]]) -> None:
    for data in steps:
        page = browser.get(base + path, timeout=10)
        response = browser.post(
            base + path, {"csrfmiddlewaretoken": _csrf(page.text), **data}, allow_redirects=False, timeout=10
        )
        assert response.status_code in (200, 302), response.text[:300]


def _impersonate(browser: requests.Session, base: str, url: str) -> dict[str, str]:
    """The impersonator's browser: the subject-token request, the confirmation page, the
    answer in the fragment of the redirect URI."""
    page = browser.get(base + url, timeout=10)
    assert page.status_code == 200 and "Impersonate" in page.text, page.text[:300]
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    pending = re.search(r'name="pending" value="([^"]+)"', page.text)
    assert action and pending
    done = browser.post(
        base + action.group(1),
        {
            "csrfmiddlewaretoken": _csrf(page.text),
            "pending": pending.group(1),
            "decision": "impersonate",
            "reason": "Support ticket 42",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert done.status_code == 302 and done.headers["Location"].startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(done.headers["Location"]).fragment).items()}


def _client(client_id: str = "pickup") -> OAuth2Session:
    return OAuth2Session(client_id, SECRET, token_endpoint_auth_method="client_secret_basic")


def _exchange(client: OAuth2Session, token_url: str, artifacts: dict[str, str]) -> dict[str, Any]:
    return dict(
        client.fetch_token(
            token_url,
            grant_type=TX,
            subject_token=artifacts["subject_token"],
            subject_token_type=JWT,
            actor_token=artifacts["id_token"],
            actor_token_type=ID,
            requested_token_type=AT,
        )
    )


def _decode(base: str, raw: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(requests.get(f"{base}/t/acme/oauth2/jwks", timeout=10).json())
    return dict(jose_jwt.decode(raw, keys, algorithms=["RS256", "ES256"]).claims)


def test_impersonate_via_a_business_app_and_refresh_twice_keeping_act(
    world: World, live_server: Any, settings: Any
) -> None:
    settings.BASE_URL = base = live_server.url
    impersonation_app(world)
    with requests.Session() as browser:
        _sign_in(
            browser,
            base,
            "/t/acme/login/?client_id=pickup",
            [{"username": "impersonator", "password": PASSWORD}],
        )
        artifacts = _impersonate(browser, base, subject_authorize_url("pickup", world.target))
    client = _client()
    token = _exchange(client, f"{base}/t/acme/oauth2/token", artifacts)
    claims = _decode(base, token["access_token"])
    assert claims["sub"] == str(world.target.pk) and claims["act"] == {"sub": str(world.impersonator.pk)}
    for _ in range(2):
        token = dict(
            client.refresh_token(f"{base}/t/acme/oauth2/token", refresh_token=token["refresh_token"])
        )
        refreshed = _decode(base, token["access_token"])
        assert refreshed["act"] == {"sub": str(world.impersonator.pk)} and refreshed["sub"] == str(
            world.target.pk
        )
    client.close()


def test_impersonation_in_a_child_org(world: World, live_server: Any, settings: Any) -> None:
    """eu-admin, resident in Acme EU and holding Pickup's impersonator role there, impersonates
    eu-user through Acme EU's endpoints with internal_org_user_impersonate."""
    settings.BASE_URL = base = live_server.url
    impersonation_app(world)
    role_assign(
        actor=None, role=Role.objects.get(name="pickup impersonator"), org=world.eu, user=world.eu_admin
    )
    eu = f"/t/acme/o/{world.eu.pk}"
    with requests.Session() as browser:
        _sign_in(
            browser, base, f"{eu}/login/?client_id=pickup", [{"username": "eu-admin", "password": PASSWORD}]
        )
        artifacts = _impersonate(
            browser,
            base,
            subject_authorize_url(
                "pickup", world.eu_user, base=eu, scope="openid internal_org_user_impersonate"
            ),
        )
    client = _client()
    token = _exchange(client, f"{base}{eu}/oauth2/token", artifacts)
    claims = _decode(base, token["access_token"])
    assert claims["sub"] == str(world.eu_user.pk) and claims["act"] == {"sub": str(world.eu_admin.pk)}
    assert claims["org_id"] == str(world.eu.pk) and "user_org" not in claims
    client.close()


def test_shared_user_impersonator_acts_with_their_resident_id(
    world: World, live_server: Any, settings: Any
) -> None:
    """Seed 001: target, resident in Acme and shared into Acme EU, signs in there through
    [Shared User Identifier] → [password] and impersonates eu-user; may_act.sub and act.sub
    are target's resident id."""
    settings.BASE_URL = base = live_server.url
    app = impersonation_app(world)
    application_share(actor=None, application=app.app, mode=Application.SharedAccess.ALL)
    login_flow_set(
        actor=None,
        application=app.app,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    role_assign(
        actor=None, role=Role.objects.get(name="pickup impersonator"), org=world.eu, user=world.target
    )
    eu = f"/t/acme/o/{world.eu.pk}"
    with requests.Session() as browser:
        _sign_in(
            browser, base, f"{eu}/login/?client_id=pickup", [{"username": "target"}, {"password": PASSWORD}]
        )
        artifacts = _impersonate(
            browser,
            base,
            subject_authorize_url(
                "pickup", world.eu_user, base=eu, scope="openid internal_org_user_impersonate"
            ),
        )
    subject = _decode(base, artifacts["subject_token"])
    assert subject["may_act"] == {"sub": str(world.target.pk)}
    client = _client()
    token = _exchange(client, f"{base}{eu}/oauth2/token", artifacts)
    claims = _decode(base, token["access_token"])
    assert claims["act"] == {"sub": str(world.target.pk)} and claims["sub"] == str(world.eu_user.pk)
    client.close()
