"""An unmodified OIDC client (Authlib) against a live actas, tokens checked with joserfc."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet

from tests.conftest import PASSWORD, World
from tests.identity.oauth_helpers import REDIRECT, SECRET, make_app


def _browser_sign_in_and_authorize(base: str, authorize_uri: str) -> str:
    """What the user's browser does: follow /authorize to the sign-in page, sign in, come
    back and be sent to the client's redirect URI. Returns that final URI."""
    with requests.Session() as browser:
        return _walk(browser, base, authorize_uri)


def _walk(browser: requests.Session, base: str, authorize_uri: str) -> str:
    first = browser.get(authorize_uri, allow_redirects=False, timeout=10)
    assert first.status_code == 302 and "/t/acme/login/" in first.headers["Location"]
    login_url = base + first.headers["Location"]
    page = browser.get(login_url, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token is not None
    signed_in = browser.post(
        login_url,
        {"csrfmiddlewaretoken": token.group(1), "username": "target", "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    assert signed_in.status_code == 302, signed_in.text[:300]
    back = browser.get(base + signed_in.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302
    return str(back.headers["Location"])


def test_authlib_completes_discovery_code_pkce_userinfo_refresh_revoke_introspect(
    transactional_db: None, world: World, live_server: Any, settings: Any
) -> None:
    settings.BASE_URL = live_server.url
    make_app(world, client_id="pickup")
    base = live_server.url
    meta = requests.get(f"{base}/t/acme/.well-known/openid-configuration", timeout=10).json()
    assert meta["issuer"] == f"{base}/t/acme/oauth2/token"

    client = OAuth2Session(
        "pickup",
        SECRET,
        scope="openid profile email internal_user_mgt_view",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    uri, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce="nonce-1"
    )
    callback = _browser_sign_in_and_authorize(base, uri)
    assert callback.startswith(REDIRECT) and f"state={state}" in callback

    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=callback, code_verifier=verifier
    )
    assert token["token_type"].lower() == "bearer"
    assert "internal_user_mgt_view" in token["scope"].split()

    # Verified against the published JWKS by an independent JOSE library.
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    id_token = jose_jwt.decode(
        token["id_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"]
    )
    jose_jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": meta["issuer"]},
        aud={"essential": True, "value": "pickup"},
        nonce={"essential": True, "value": "nonce-1"},
        exp={"essential": True},
    ).validate(id_token.claims)
    assert id_token.claims["sub"] == str(world.target.pk)
    assert id_token.claims["org_id"] == str(world.root.pk)
    access = jose_jwt.decode(token["access_token"], keys, algorithms=["RS256", "ES256"])
    assert access.header["typ"] == "at+jwt" and access.claims["aud"] == "pickup"

    info = client.get(meta["userinfo_endpoint"], timeout=10)
    assert info.status_code == 200 and info.json()["sub"] == str(world.target.pk)

    refreshed = client.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed["refresh_token"] != token["refresh_token"]

    introspected = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
    body = introspected.json()
    assert body["active"] is True and body["sub"] == str(world.target.pk) and body["client_id"] == "pickup"

    revoked = client.revoke_token(meta["revocation_endpoint"], token=refreshed["access_token"])
    assert revoked.status_code == 200
    after = client.introspect_token(meta["introspection_endpoint"], token=refreshed["access_token"])
    assert after.json() == {"active": False}
    assert client.get(meta["userinfo_endpoint"], timeout=10).status_code == 401
    # Close the keep-alive connection, so the live server's thread lets go of its database
    # connection before the test database is dropped.
    client.close()


@pytest.mark.parametrize("path", ["/t/acme/oauth2/jwks"])
def test_jwks_is_cacheable(transactional_db: None, world: World, live_server: Any, path: str) -> None:
    response = requests.get(live_server.url + path, timeout=10)
    assert response.status_code == 200 and "max-age" in response.headers["Cache-Control"]
    assert response.json()["keys"][0]["kid"]
