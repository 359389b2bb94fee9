"""Bad input at the OAuth endpoints gets a documented 4xx, never a 5xx."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.oauth import tokens
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import REDIRECT, App, basic, make_app, pkce_pair

ODD = ["", "\x00", "a" * 5000, "%ff", "é", "💥", "../../", "<script>", "' OR 1=1 --", "null", "[]", "{}"]


@pytest.fixture
def pickup(world: World) -> App:
    return make_app(world)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _forged_tokens() -> list[str]:
    now = 1_900_000_000
    claims = {
        "iss": "http://127.0.0.1:8000/t/acme/oauth2/token",
        "sub": "x",
        "exp": now,
        "iat": now - 10,
        "client_id": "pickup",
        "jti": "j",
        "scope": "openid",
    }
    kid = tokens.current_keyset().active.kid
    return [
        _b64({"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + _b64(claims) + ".",
        _b64({"alg": "HS256", "typ": "at+jwt", "kid": kid}) + "." + _b64(claims) + ".c2ln",
        _b64({"alg": "RS256", "typ": "at+jwt", "kid": "unknown"}) + "." + _b64(claims) + ".c2ln",
        "a.b.c",
        "....",
        "not-a-jwt",
    ]


@pytest.mark.parametrize("value", ODD)
def test_authorize_survives_odd_values_in_every_parameter(
    client: Client, world: World, pickup: App, value: str
) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    for name in (
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "prompt",
        "max_age",
        "orgId",
    ):
        params = {
            "client_id": "pickup",
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "openid",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            name: value,
        }
        response = client.get("/t/acme/oauth2/authorize", params)
        assert response.status_code < 500, (name, value, response.status_code)
        if response.status_code == 302 and name in ("client_id", "redirect_uri"):
            assert response["Location"].startswith((REDIRECT, "/t/acme/")), (name, value)


def test_authorize_with_duplicated_parameters_and_bad_utf8(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.target)
    dup = client.get(
        "/t/acme/oauth2/authorize?client_id=pickup&client_id=other&response_type=code&redirect_uri="
        + REDIRECT
        + "&redirect_uri=https://evil.example/"
    )
    assert dup.status_code == 400 and "Location" not in dup
    raw = client.get("/t/acme/oauth2/authorize?client_id=%ff%fe&redirect_uri=%c3%28")
    assert raw.status_code == 400


@pytest.mark.parametrize(
    "grant", ["authorization_code", "refresh_token", "client_credentials", "password", "", "x" * 300]
)
@pytest.mark.parametrize("value", ODD)
def test_token_endpoint_survives_odd_values(
    client: Client, world: World, pickup: App, grant: str, value: str
) -> None:
    auth = basic("pickup", pickup.secret)
    data = {
        "grant_type": grant,
        "code": value,
        "refresh_token": value,
        "redirect_uri": value,
        "code_verifier": value,
        "scope": value,
        "client_id": value,
    }
    response = client.post("/t/acme/oauth2/token", data, HTTP_AUTHORIZATION=auth)
    if grant == "client_credentials" and value == "":
        # Empty values are as good as absent: the client asked for its own token.
        assert response.status_code == 200 and response.json()["scope"] == ""
        return
    assert 400 <= response.status_code < 500, (grant, value, response.status_code)
    assert "error" in response.json()


def test_token_endpoint_survives_odd_client_authentication(client: Client, world: World, pickup: App) -> None:
    for header in (
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Bearer x",
        "Basic " + "A" * 10000,
    ):
        response = client.post(
            "/t/acme/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=header
        )
        assert response.status_code in (400, 401), (header[:30], response.status_code)


@pytest.mark.parametrize("forged", range(6))
def test_forged_tokens_are_refused_everywhere(client: Client, world: World, pickup: App, forged: int) -> None:
    token = _forged_tokens()[forged]
    info = client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + token)
    assert info.status_code == 401
    intro = client.post(
        "/t/acme/oauth2/introspect", {"token": token}, HTTP_AUTHORIZATION=basic("pickup", pickup.secret)
    )
    assert intro.json() == {"active": False}
    revoke = client.post(
        "/t/acme/oauth2/revoke", {"token": token}, HTTP_AUTHORIZATION=basic("pickup", pickup.secret)
    )
    assert revoke.status_code == 200
    logout = client.get("/t/acme/oidc/logout", {"id_token_hint": token})
    assert logout.status_code == 400


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(
        st.sampled_from(
            [
                "token",
                "token_type_hint",
                "client_id",
                "client_secret",
                "id_token_hint",
                "post_logout_redirect_uri",
                "state",
                "access_token",
            ]
        ),
        st.text(max_size=300),
        max_size=6,
    )
)
def test_generated_input_at_introspect_userinfo_revoke_logout(
    client: Client, world: World, pickup: App, params: dict[str, str]
) -> None:
    auth = basic("pickup", pickup.secret)
    for response in (
        client.post("/t/acme/oauth2/introspect", params, HTTP_AUTHORIZATION=auth),
        client.post("/t/acme/oauth2/revoke", params, HTTP_AUTHORIZATION=auth),
        client.post("/t/acme/oauth2/userinfo", params),
        client.get("/t/acme/oidc/logout", params),
    ):
        assert response.status_code < 500
