"""The OAuth 2.0 / OIDC endpoints: the happy paths and every error of DESIGN's table."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken, RefreshToken

from identity.audit.models import AuditEvent
from identity.models import Application, OAuthAuthorization, OAuthConsent, SSOSession
from identity.oauth import tokens
from identity.oauth.claims import issuer_for
from identity.services.loginflows import login_flow_set
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import (
    LOGOUT_REDIRECT,
    REDIRECT,
    App,
    authorize_url,
    basic,
    exchange,
    get_code,
    make_app,
    pkce_pair,
    query_of,
)

ISS = "http://127.0.0.1:8000/t/acme/oauth2/token"


@pytest.fixture
def pickup(world: World) -> App:
    return make_app(world)


def _verify_access(raw: str) -> dict[str, Any]:
    return tokens.verify(raw, typ="at+jwt", issuer=ISS, audience="pickup")


def _verify_id(raw: str, aud: str = "pickup") -> dict[str, Any]:
    return tokens.verify(raw, typ="JWT", issuer=ISS, audience=aud)


# --- authorization code + PKCE ----------------------------------------------------------------


def test_code_flow_issues_jwt_access_token_and_id_token_with_org_claims(
    client: Client, world: World, pickup: App
) -> None:
    code, verifier = get_code(client, world, pickup, scope="openid profile email internal_user_mgt_view")
    response = exchange(client, pickup, code, verifier)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"openid", "profile", "email", "internal_user_mgt_view"}
    header = tokens.jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["kid"] == tokens.current_keyset().active.kid
    access = _verify_access(body["access_token"])
    assert access["sub"] == str(world.target.pk)
    assert access["aut"] == "APPLICATION_USER"
    assert access["client_id"] == access["azp"] == "pickup"
    assert access["org_id"] == str(world.root.pk) and access["org_name"] == "Acme"
    assert "user_org" not in access and "act" not in access
    assert access["exp"] - access["iat"] == 3600
    identity = _verify_id(body["id_token"])
    session = SSOSession.objects.get(user=world.target, ended_at__isnull=True)
    assert identity["nonce"] == "n-456"
    assert identity["sid"] == identity["isk"] == session.sid
    assert identity["org_id"] == str(world.root.pk) and identity["org_name"] == "Acme"
    assert identity["auth_time"] == int(session.auth_time.timestamp())
    assert identity["preferred_username"] == "target" and identity["email"] == "target@example.test"
    assert "at_hash" in identity
    # Stored by checksum only.
    stored = AccessToken.objects.get(user=world.target)
    assert stored.token == "" and len(stored.token_checksum) == 64


def test_scopes_are_narrowed_to_what_the_user_holds(client: Client, world: World, pickup: App) -> None:
    """impersonator holds no role on Pickup: only OIDC scopes survive; unknown scopes drop."""
    code, verifier = get_code(
        client, world, pickup, user=world.impersonator, scope="openid internal_user_mgt_view nonsense"
    )
    body = exchange(client, pickup, code, verifier).json()
    assert body["scope"] == "openid"


def test_scope_needs_the_app_authorized_for_it(client: Client, world: World, pickup: App) -> None:
    """target's role holds internal_user_mgt_view; a scope the app is not authorized for is dropped."""
    code, verifier = get_code(client, world, pickup, scope="openid internal_user_mgt_delete")
    assert exchange(client, pickup, code, verifier).json()["scope"] == "openid"


def test_reused_code_is_refused_and_revokes_its_tokens(client: Client, world: World, pickup: App) -> None:
    code, verifier = get_code(client, world, pickup)
    first = exchange(client, pickup, code, verifier).json()
    again = exchange(client, pickup, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert not AccessToken.objects.filter(user=world.target).exists()
    assert not RefreshToken.objects.filter(user=world.target, revoked__isnull=True).exists()
    intro = client.post(
        "/t/acme/oauth2/introspect",
        {"token": first["access_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert intro.json() == {"active": False}
    assert AuditEvent.objects.filter(action="oauth-code-replay", outcome="failure").count() == 1


def test_pkce_is_mandatory_and_must_match(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.target)
    no_pkce = client.get(authorize_url("pickup", challenge=None))
    assert no_pkce.status_code == 302
    assert query_of(no_pkce["Location"])["error"] == "invalid_request"
    plain = client.get(
        authorize_url("pickup", challenge=None, code_challenge="x" * 43, code_challenge_method="plain")
    )
    assert query_of(plain["Location"])["error"] == "invalid_request"
    code, _verifier = get_code(client, world, pickup, signed_in=True)
    wrong = exchange(client, pickup, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"


def test_token_request_redirect_uri_must_equal_the_authorize_one(
    client: Client, world: World, pickup: App
) -> None:
    code, verifier = get_code(client, world, pickup)
    response = client.post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT + "?x=1",
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert response.status_code == 400 and response.json()["error"] in {"invalid_grant", "invalid_request"}


def test_bad_redirect_uri_gets_an_error_page_never_a_redirect(
    client: Client, world: World, pickup: App
) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    response = client.get(
        authorize_url("pickup", challenge=challenge, redirect_uri="https://evil.example/cb")
    )
    assert response.status_code == 400 and "Location" not in response
    assert b"cannot be completed" in response.content
    for near in (REDIRECT + "/../x", REDIRECT + "?extra=1", REDIRECT + "/", REDIRECT.replace("8765", "8766")):
        response = client.get(authorize_url("pickup", challenge=challenge, redirect_uri=near))
        assert response.status_code == 400 and "Location" not in response, near


def test_unknown_client_gets_an_error_page(client: Client, world: World, pickup: App) -> None:
    response = client.get(authorize_url("nobody", challenge="x"))
    assert response.status_code == 400 and "Location" not in response
    nul = client.get(authorize_url("pick\x00up", challenge="x"))
    assert nul.status_code == 400


def test_a_state_outside_ascii_comes_back_unchanged(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, state="état ✓ 1"))
    assert response.status_code == 302, response.content[:300]
    params = query_of(response["Location"])
    assert params["state"] == "état ✓ 1" and params["code"]
    assert params["iss"] == ISS  # RFC 9207: whose answer this is


def test_another_tenants_client_is_unknown_here(client: Client, world: World, pickup: App) -> None:
    from identity.services.applications import application_create
    from organizations.services import org_insert

    other = org_insert(parent=None, name="Globex", handle="globex")
    application_create(
        actor=None,
        org=other,
        name="Globex app",
        client_type=Application.CLIENT_CONFIDENTIAL,
        client_id="globex-app",
        client_secret="globex-secret-0123456789abcdef0123",
        grant_types=["authorization_code"],
        redirect_uris=[REDIRECT],
        skip_login_consent=True,
    )
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("globex-app", challenge=challenge))
    assert response.status_code == 400 and "Location" not in response
    assert not OAuthAuthorization.objects.filter(application__client_id="globex-app").exists()


def test_request_objects_are_refused_with_oidc_errors(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    for param, error in (("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")):
        response = client.get(
            authorize_url("pickup", challenge=challenge, **{param: "eyJhbGciOiJub25lIn0.e30."})
        )
        assert response.status_code == 302, response.content[:300]
        params = query_of(response["Location"])
        assert params["error"] == error and params["state"] == "st-123" and "code" not in params
    assert not OAuthAuthorization.objects.exists()


def test_unsupported_response_type_redirects_with_error(client: Client, world: World, pickup: App) -> None:
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, response_type="token"))
    assert response.status_code == 302
    params = query_of(response["Location"])
    assert params["error"] == "unsupported_response_type" and params["state"] == "st-123"
    assert params["iss"] == ISS


def test_anonymous_authorize_goes_to_the_apps_login_flow_and_back(
    client: Client, world: World, pickup: App
) -> None:
    _v, challenge = pkce_pair()
    url = authorize_url("pickup", challenge=challenge)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/t/acme/login/?client_id=pickup")
    login = client.post(response["Location"], {"username": "target", "password": "correct-horse-battery"})
    assert login.status_code == 302 and login["Location"] == url
    back = client.get(login["Location"])
    assert back.status_code == 302 and "code=" in back["Location"]


def test_prompt_none_without_session_is_login_required(client: Client, world: World, pickup: App) -> None:
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, prompt="none"))
    params = query_of(response["Location"])
    assert params["error"] == "login_required" and params["iss"] == ISS


def test_prompt_none_when_the_apps_flow_asks_for_more_is_interaction_required(
    client: Client, world: World, pickup: App
) -> None:
    """Signed in with a password, but this application also asks for an email code: a silent
    request cannot do that (OIDC Core §3.1.2.6: interaction_required, not login_required)."""
    login_flow_set(
        actor=None, application=pickup.app, org=world.root, steps=[["BasicAuthenticator"], ["email-otp"]]
    )
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, prompt="none"))
    params = query_of(response["Location"])
    assert params["error"] == "interaction_required" and params["state"] == "st-123" and "code" not in params


def test_prompt_login_and_max_age_ask_again_and_renew_auth_time(
    client: Client, world: World, pickup: App
) -> None:
    sign_in(client, world.target)
    session = SSOSession.objects.get(user=world.target, ended_at__isnull=True)
    SSOSession.objects.filter(pk=session.pk).update(auth_time=session.auth_time.replace(year=2020))
    _v, challenge = pkce_pair()
    url = authorize_url("pickup", challenge=challenge, max_age="300")
    response = client.get(url)
    assert response.status_code == 302 and "reauth=1" in response["Location"]
    page = client.get(response["Location"])
    assert b'name="password"' in page.content  # asked again, although signed in
    done = client.post(response["Location"], {"username": "target", "password": "correct-horse-battery"})
    assert done.status_code == 302
    session.refresh_from_db()
    assert session.auth_time.year != 2020 and session.ended_at is None
    assert client.get(done["Location"])["Location"].startswith(REDIRECT)
    login = client.get(authorize_url("pickup", challenge=challenge, prompt="login"))
    assert "reauth=1" in login["Location"] and "prompt" not in query_of(login["Location"])["next"]


def test_consent_screen_unless_skipped_and_deny(client: Client, world: World) -> None:
    app = make_app(world, client_id="askfirst", skip_login_consent=False)
    sign_in(client, world.target)
    verifier, challenge = pkce_pair()
    page = client.get(authorize_url("askfirst", challenge=challenge))
    assert page.status_code == 200 and b"Allow App askfirst?" in page.content
    pending = page.context["pending"]
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.cookies = client.cookies
    assert (
        csrf_client.post(
            "/t/acme/oauth2/authorize/consent", {"pending": pending, "decision": "allow"}
        ).status_code
        == 403
    )
    allowed = client.post("/t/acme/oauth2/authorize/consent", {"pending": pending, "decision": "allow"})
    assert allowed.status_code == 302 and "code=" in allowed["Location"]
    assert exchange(client, app, query_of(allowed["Location"])["code"], verifier).status_code == 200
    # A pending request is single use.
    again = client.post("/t/acme/oauth2/authorize/consent", {"pending": pending, "decision": "allow"})
    assert again.status_code == 400
    page = client.get(authorize_url("askfirst", challenge=challenge, prompt="consent"))
    denied = client.post(
        "/t/acme/oauth2/authorize/consent", {"pending": page.context["pending"], "decision": "deny"}
    )
    assert query_of(denied["Location"])["error"] == "access_denied"


def test_consent_is_remembered_until_more_is_asked(client: Client, world: World) -> None:
    """Allowed once, the same scopes sign in without the screen, silently too (prompt=none,
    as mozilla-django-oidc renews); a new scope or prompt=consent asks again."""
    make_app(world, client_id="askfirst", skip_login_consent=False)
    sign_in(client, world.target)
    _verifier, challenge = pkce_pair()
    silent = client.get(authorize_url("askfirst", challenge=challenge, prompt="none"))
    assert query_of(silent["Location"])["error"] == "consent_required"
    page = client.get(authorize_url("askfirst", challenge=challenge, scope="openid profile"))
    client.post("/t/acme/oauth2/authorize/consent", {"pending": page.context["pending"], "decision": "allow"})
    consent = OAuthConsent.objects.get(user=world.target, application__client_id="askfirst")
    assert consent.scopes == ["openid", "profile"] and consent.organization == world.root
    assert AuditEvent.objects.filter(action="consent-grant", subject_id=world.target.pk).count() == 1
    for extra in ({}, {"prompt": "none"}):
        quiet = client.get(authorize_url("askfirst", challenge=challenge, scope="openid profile", **extra))
        assert quiet.status_code == 302 and "code" in query_of(quiet["Location"]), extra
    for extra in ({"scope": "openid profile email"}, {"scope": "openid", "prompt": "consent"}):
        asked = client.get(authorize_url("askfirst", challenge=challenge, **extra))
        assert asked.status_code == 200 and b"Allow App askfirst?" in asked.content, extra


def test_post_to_authorize_is_answered_with_the_equivalent_get(
    client: Client, world: World, pickup: App
) -> None:
    response = client.post("/t/acme/oauth2/authorize", {"client_id": "pickup", "response_type": "code"})
    assert response.status_code == 303
    assert (
        response["Location"].startswith("/t/acme/oauth2/authorize?")
        and "client_id=pickup" in response["Location"]
    )


def test_root_authorize_with_org_id_signs_in_to_the_child_org(
    client: Client, world: World, pickup: App
) -> None:
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, orgId=str(world.eu.pk)))
    assert response.status_code == 302 and response["Location"].startswith(
        f"/t/acme/o/{world.eu.pk}/oauth2/authorize?"
    )
    assert "orgId" not in response["Location"]


def test_shared_user_signs_in_to_a_child_orgs_app_through_identifier_then_password(
    client: Client, world: World, pickup: App
) -> None:
    """Seed 001: target (resident in Acme, shared into Acme EU) signs in to Pickup in Acme EU
    through [Shared User Identifier] → [password]; the tokens carry the resident user's sub,
    Acme EU's org_id and user_org = Acme."""
    login_flow_set(
        actor=None,
        application=pickup.app,
        org=world.eu,
        steps=[["SharedUserIdentifierExecutor"], ["BasicAuthenticator"]],
    )
    base = f"/t/acme/o/{world.eu.pk}"
    verifier, challenge = pkce_pair()
    start = client.get(authorize_url("pickup", challenge=challenge, base=base))
    assert start.status_code == 302 and start["Location"].startswith(f"{base}/login/?client_id=pickup")
    step1 = client.post(start["Location"], {"username": "target"})
    assert step1.status_code == 200 and b"Step 2 of 2" in step1.content
    step2 = client.post(start["Location"], {"password": "correct-horse-battery"})
    assert step2.status_code == 302
    back = client.get(step2["Location"])
    code = query_of(back["Location"])["code"]
    body = exchange(client, pickup, code, verifier, base=base).json()
    access = _verify_access(body["access_token"])
    assert access["org_id"] == str(world.eu.pk) and access["org_name"] == "Acme EU"
    assert access["user_org"] == str(world.root.pk)
    assert access["sub"] == str(world.target.pk)
    identity = _verify_id(body["id_token"])
    assert identity["org_id"] == str(world.eu.pk) and identity["user_org"] == str(world.root.pk)
    assert identity["amr"] == ["SharedUserIdentifierExecutor", "BasicAuthenticator"]
    # A code from Acme EU is not redeemed at a sibling organization's endpoint.
    code2, verifier2 = get_code(client, world, pickup, org=world.eu, signed_in=True)
    sibling = exchange(client, pickup, code2, verifier2, base=f"/t/acme/o/{world.us.pk}")
    assert sibling.status_code == 400 and sibling.json()["error"] == "invalid_grant"


# --- refresh ---------------------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(client: Client, world: World, pickup: App) -> None:
    code, verifier = get_code(client, world, pickup)
    first = exchange(client, pickup, code, verifier).json()
    auth = basic("pickup", pickup.secret)
    second = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        HTTP_AUTHORIZATION=auth,
    )
    assert second.status_code == 200, second.content
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert _verify_access(body["access_token"])["org_id"] == str(world.root.pk)
    assert "id_token" in body
    reuse = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        HTTP_AUTHORIZATION=auth,
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    # The whole family is gone: the newest refresh token no longer works either.
    newest = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        HTTP_AUTHORIZATION=auth,
    )
    assert newest.status_code == 400
    assert AuditEvent.objects.filter(action="oauth-refresh-token-reuse").exists()


def test_refresh_drops_a_scope_whose_role_was_taken_away(client: Client, world: World, pickup: App) -> None:
    from identity.models import Role
    from identity.services.roles import role_unassign

    code, verifier = get_code(client, world, pickup, scope="openid internal_user_mgt_view")
    first = exchange(client, pickup, code, verifier).json()
    role = Role.objects.get(name="pickup viewer")
    role_unassign(actor=None, role=role, org=world.root, user=world.target)
    body = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    ).json()
    assert body["scope"] == "openid"


def test_refresh_token_lifetime_per_app(client: Client, world: World) -> None:
    app = make_app(world, client_id="short", refresh_token_lifetime=1)
    code, verifier = get_code(client, world, app)
    first = exchange(client, app, code, verifier).json()
    time.sleep(1.1)
    late = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        HTTP_AUTHORIZATION=basic("short", app.secret),
    )
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


# --- client credentials and client authentication ---------------------------------------------------


def test_client_credentials_token_is_for_the_application(client: Client, world: World, pickup: App) -> None:
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials", "scope": "internal_user_mgt_list"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert response.status_code == 200, response.content
    access = _verify_access(response.json()["access_token"])
    assert access["aut"] == "APPLICATION" and access["sub"] == "pickup"
    assert access["scope"] == "internal_user_mgt_list" and "refresh_token" not in response.json()


def test_client_credentials_scope_outside_authorization_is_invalid_scope(
    client: Client, world: World, pickup: App
) -> None:
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials", "scope": "internal_user_impersonate"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


def test_wrong_secret_and_unknown_client_are_invalid_client(
    client: Client, world: World, pickup: App
) -> None:
    for auth in (basic("pickup", "wrong"), basic("nobody", "x"), basic("pick\x00up", "x")):
        response = client.post(
            "/t/acme/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth
        )
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


def test_grant_not_allowed_is_unauthorized_client(client: Client, world: World) -> None:
    app = make_app(world, client_id="codeonly", grant_types=("authorization_code",))
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic("codeonly", app.secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


def test_unsupported_grant_type(client: Client, world: World, pickup: App) -> None:
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "password", "username": "x", "password": "y"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_missing_grant_type_is_invalid_request(client: Client, world: World, pickup: App) -> None:
    response = client.post(
        "/t/acme/oauth2/token", {"code": "x"}, HTTP_AUTHORIZATION=basic("pickup", pickup.secret)
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Missing grant_type parameter.",
    }


def test_failed_client_authentication_is_challenged_with_basic(
    client: Client, world: World, pickup: App
) -> None:
    """RFC 6749 §5.2: 401 with the challenge of the scheme clients authenticate with."""
    form = {"grant_type": "client_credentials"}
    wrong = client.post("/t/acme/oauth2/token", form, HTTP_AUTHORIZATION=basic("pickup", "wrong"))
    posted = client.post("/t/acme/oauth2/token", {**form, "client_id": "pickup", "client_secret": "wrong"})
    revoked = client.post(
        "/t/acme/oauth2/revoke", {"token": "whatever"}, HTTP_AUTHORIZATION=basic("pickup", "wrong")
    )
    for response in (wrong, posted, revoked):
        assert response.status_code == 401, response.content
        assert response.json()["error"] == "invalid_client"
        assert response["WWW-Authenticate"].startswith("Basic realm="), response["WWW-Authenticate"]


def test_client_of_another_tenant_is_unknown_here(client: Client, world: World, pickup: App) -> None:
    from identity.services.tenants import tenant_bootstrap

    tenant_bootstrap(
        actor=None,
        handle="globex",
        name="Globex",
        admin_username="g",
        admin_password="correct-horse-battery",
        admin_email="g@example.test",
    )
    response = client.post(
        "/t/globex/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert response.status_code == 401


def test_public_client_with_pkce_and_no_secret(client: Client, world: World) -> None:
    app = make_app(world, client_id="spa", client_type=Application.CLIENT_PUBLIC)
    code, verifier = get_code(client, world, app)
    response = client.post(
        "/t/acme/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            "client_id": "spa",
        },
    )
    assert response.status_code == 200, response.content
    sign_in(client, world.target)
    no_pkce = client.get(authorize_url("spa", challenge=None))
    assert query_of(no_pkce["Location"])["error"] == "invalid_request"  # public clients always need PKCE


def test_token_endpoint_refuses_get_and_garbage(client: Client, world: World, pickup: App) -> None:
    assert client.get("/t/acme/oauth2/token").status_code == 405
    json_body = client.post(
        "/t/acme/oauth2/token",
        '{"grant_type": "client_credentials"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert json_body.status_code == 400 and json_body.json()["error"] in {
        "invalid_request",
        "unsupported_grant_type",
    }
    huge = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "authorization_code", "code": "x" * 5000, "redirect_uri": REDIRECT},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert huge.status_code == 400 and huge.json()["error"] == "invalid_request"


# --- revoke, introspect, userinfo -------------------------------------------------------------------


def _tokens(client: Client, world: World, app: App) -> dict[str, Any]:
    code, verifier = get_code(client, world, app)
    response = exchange(client, app, code, verifier)
    assert response.status_code == 200
    return dict(response.json())


def test_introspection_of_access_and_refresh_tokens(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    auth = basic("pickup", pickup.secret)
    active = client.post(
        "/t/acme/oauth2/introspect", {"token": issued["access_token"]}, HTTP_AUTHORIZATION=auth
    ).json()
    assert active["active"] is True and active["sub"] == str(world.target.pk)
    assert (
        active["client_id"] == "pickup" and active["scope"] == issued["scope"] and active["exp"] > time.time()
    )
    refresh = client.post(
        "/t/acme/oauth2/introspect",
        {"token": issued["refresh_token"], "token_type_hint": "refresh_token"},
        HTTP_AUTHORIZATION=auth,
    ).json()
    assert refresh["active"] is True and refresh["token_type"] == "refresh_token"
    for bad in ("", "garbage", issued["id_token"], issued["access_token"][:-4] + "AAAA"):
        assert client.post("/t/acme/oauth2/introspect", {"token": bad}, HTTP_AUTHORIZATION=auth).json() == {
            "active": False
        }


def test_introspection_needs_a_confidential_client(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    assert client.post("/t/acme/oauth2/introspect", {"token": issued["access_token"]}).status_code == 401
    wrong = client.post(
        "/t/acme/oauth2/introspect",
        {"token": issued["access_token"]},
        HTTP_AUTHORIZATION=basic("pickup", "nope"),
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert client.get("/t/acme/oauth2/introspect").status_code == 405


def test_revocation_of_an_access_token_ends_it_everywhere(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    auth = basic("pickup", pickup.secret)
    assert (
        client.post(
            "/t/acme/oauth2/revoke", {"token": issued["access_token"]}, HTTP_AUTHORIZATION=auth
        ).status_code
        == 200
    )
    assert client.post(
        "/t/acme/oauth2/introspect", {"token": issued["access_token"]}, HTTP_AUTHORIZATION=auth
    ).json() == {"active": False}
    assert (
        client.get(
            "/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + issued["access_token"]
        ).status_code
        == 401
    )
    # Its refresh token went with it (RFC 7009 §2.1).
    refresh = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        HTTP_AUTHORIZATION=auth,
    )
    assert refresh.status_code == 400
    # Unknown tokens answer 200; a bad client does not.
    assert (
        client.post("/t/acme/oauth2/revoke", {"token": "unknown"}, HTTP_AUTHORIZATION=auth).status_code == 200
    )
    assert (
        client.post(
            "/t/acme/oauth2/revoke", {"token": "unknown"}, HTTP_AUTHORIZATION=basic("pickup", "x")
        ).status_code
        == 401
    )


def test_a_client_cannot_revoke_another_clients_token(client: Client, world: World, pickup: App) -> None:
    other = make_app(world, client_id="other")
    issued = _tokens(client, world, pickup)
    client.post(
        "/t/acme/oauth2/revoke",
        {"token": issued["access_token"]},
        HTTP_AUTHORIZATION=basic("other", other.secret),
    )
    assert (
        client.get(
            "/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + issued["access_token"]
        ).status_code
        == 200
    )


def test_userinfo(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    response = client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + issued["access_token"])
    assert response.status_code == 200
    info = response.json()
    assert info["sub"] == str(world.target.pk) and info["email"] == "target@example.test"
    assert info["org_id"] == str(world.root.pk)
    # RFC 6750 §3.1: without credentials, the challenge and no error code.
    for header in ("", "Bearer", "Basic abc"):
        anonymous = client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION=header)
        assert anonymous.status_code == 401 and anonymous.content == b""
        assert anonymous["WWW-Authenticate"] == 'Bearer realm="actas"'
    for header in ("Bearer garbage", "Bearer " + issued["id_token"]):
        bad = client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION=header)
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
        assert bad["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_userinfo_needs_openid(client: Client, world: World, pickup: App) -> None:
    response = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "client_credentials"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    bad = client.get(
        "/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + response.json()["access_token"]
    )
    assert bad.status_code == 403 and bad.json()["error"] == "insufficient_scope"


def test_expired_access_token_is_refused(client: Client, world: World) -> None:
    app = make_app(world, client_id="brief", access_token_lifetime=1)
    issued = _tokens(client, world, app)
    # The JWT itself is still inside its clock leeway; the stored expiry decides.
    AccessToken.objects.update(expires=AccessToken.objects.get().expires.replace(year=2020))
    assert (
        client.get(
            "/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + issued["access_token"]
        ).status_code
        == 401
    )


# --- discovery, JWKS, logout ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/t/acme/oauth2/token/.well-known/openid-configuration", "/t/acme/.well-known/openid-configuration"],
)
def test_discovery_lists_endpoints_and_every_supported_type(client: Client, world: World, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    doc = response.json()
    assert doc["issuer"] == issuer_for(world.root) == ISS
    assert doc["authorization_endpoint"].endswith("/t/acme/oauth2/authorize")
    assert doc["jwks_uri"].endswith("/t/acme/oauth2/jwks")
    assert doc["end_session_endpoint"].endswith("/t/acme/oidc/logout")
    assert "code" in doc["response_types_supported"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(doc["grant_types_supported"])
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert client.get("/t/nosuch/.well-known/openid-configuration").status_code == 404


def test_logout_asks_then_ends_session_revokes_tokens_and_returns(
    client: Client, world: World, pickup: App
) -> None:
    issued = _tokens(client, world, pickup)
    params = {
        "id_token_hint": issued["id_token"],
        "post_logout_redirect_uri": LOGOUT_REDIRECT,
        "state": "bye",
    }
    page = client.get("/t/acme/oidc/logout", params)
    assert page.status_code == 200 and b"Sign out of Acme?" in page.content
    done = client.post("/t/acme/oidc/logout", {**params, "confirm": "yes"})
    assert done.status_code == 302 and done["Location"] == LOGOUT_REDIRECT + "?state=bye"
    assert not SSOSession.objects.filter(user=world.target, ended_at__isnull=True).exists()
    assert not AccessToken.objects.filter(user=world.target).exists()
    assert OAuthAuthorization.objects.filter(user=world.target, revoked_at__isnull=False).exists()
    assert client.get("/t/acme/console/").status_code == 302  # signed out


def test_logout_skips_consent_when_the_app_says_so(client: Client, world: World) -> None:
    app = make_app(world, client_id="quick", skip_logout_consent=True)
    issued = _tokens(client, world, app)
    done = client.get(
        "/t/acme/oidc/logout",
        {"id_token_hint": issued["id_token"], "post_logout_redirect_uri": LOGOUT_REDIRECT},
    )
    assert done.status_code == 302 and done["Location"] == LOGOUT_REDIRECT


def test_logout_refuses_unregistered_redirect_and_bad_hint(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    evil = client.get(
        "/t/acme/oidc/logout",
        {"id_token_hint": issued["id_token"], "post_logout_redirect_uri": "https://evil.example/"},
    )
    assert evil.status_code == 400 and "Location" not in evil
    bad = client.get("/t/acme/oidc/logout", {"id_token_hint": "garbage"})
    assert bad.status_code == 400
    assert SSOSession.objects.filter(user=world.target, ended_at__isnull=True).exists()


# --- regressions from the security review ---------------------------------------------------------


def test_unheld_scopes_never_come_back_when_nothing_survives_narrowing(
    client: Client, world: World, pickup: App
) -> None:
    """oauthlib falls back to the request's own ``scope`` when the decided list is empty."""
    code, verifier = get_code(
        client,
        world,
        pickup,
        user=world.impersonator,
        scope="internal_user_mgt_view internal_user_impersonate",
    )
    body = exchange(client, pickup, code, verifier).json()
    assert body["scope"] == ""
    assert _verify_access(body["access_token"])["scope"] == ""


def test_an_ordinary_user_gets_no_console_scopes_from_the_console_client(
    client: Client, world: World
) -> None:
    console = world.system.console
    sign_in(client, world.eu_user)
    verifier, challenge = pkce_pair()
    response = client.get(
        f"/t/acme/o/{world.eu.pk}/oauth2/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": console.client_id,
                "redirect_uri": console.redirect_uris.split()[0],
                "scope": "internal_user_mgt_delete internal_config_mgt_update",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    code = query_of(response["Location"])["code"]
    token = client.post(
        f"/t/acme/o/{world.eu.pk}/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": console.redirect_uris.split()[0],
            "code_verifier": verifier,
            "client_id": console.client_id,
        },
    )
    assert token.status_code == 200 and token.json()["scope"] == ""


def test_consent_answer_takes_no_parameters_from_its_url(client: Client, world: World) -> None:
    make_app(world, client_id="askfirst", skip_login_consent=False)
    sign_in(client, world.target)
    _verifier, challenge = pkce_pair()
    page = client.get(authorize_url("askfirst", challenge=challenge, scope="profile"))
    response = client.post(
        "/t/acme/oauth2/authorize/consent?scope=internal_user_mgt_list",
        {"pending": page.context["pending"], "decision": "allow"},
    )
    assert response.status_code == 400 and "Location" not in response


def test_relying_party_posts_to_authorize_and_logout_work_with_csrf_checks(
    client: Client, world: World, pickup: App
) -> None:
    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/t/acme/oauth2/authorize", {"client_id": "pickup", "response_type": "code"})
    assert response.status_code == 303
    logout = strict.post("/t/acme/oidc/logout", {"client_id": "pickup", "state": "x"})
    assert logout.status_code == 303 and logout["Location"].startswith("/t/acme/oidc/logout?")
    # The confirmation itself stays CSRF-protected.
    confirm = strict.post("/t/acme/oidc/logout", {"confirm": "yes"})
    assert confirm.status_code == 403


def test_client_credentials_only_at_the_apps_own_or_the_tenants_endpoint(
    client: Client, world: World, pickup: App
) -> None:
    auth = basic("pickup", pickup.secret)
    child = client.post(
        f"/t/acme/o/{world.eu.pk}/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth
    )
    assert child.status_code == 400 and child.json()["error"] == "unauthorized_client"
    from organizations.services import organization_set_status

    organization_set_status(actor=None, org=world.eu, status="disabled")
    disabled = client.post(
        f"/t/acme/o/{world.eu.pk}/oauth2/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth
    )
    assert disabled.status_code == 401


def test_pkce_downgrade_is_refused(client: Client, world: World) -> None:
    app = make_app(world, client_id="nopkce", pkce_required=False)
    sign_in(client, world.target)
    response = client.get(authorize_url("nopkce", challenge=None))
    code = query_of(response["Location"])["code"]
    downgrade = exchange(client, app, code, "an-attackers-verifier-" + "x" * 30)
    assert downgrade.status_code == 400 and downgrade.json()["error"] == "invalid_grant"


def test_odd_max_age_is_invalid_request(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    for value in ("²", "-1", "1e3", "9" * 11):
        response = client.get(authorize_url("pickup", challenge=challenge, max_age=value))
        assert response.status_code == 302 and query_of(response["Location"])["error"] == "invalid_request"


def test_a_disabled_users_tokens_stop_working(client: Client, world: World, pickup: App) -> None:
    from identity.services.users import user_set_flags

    issued = _tokens(client, world, pickup)
    user_set_flags(actor=None, user=world.target, is_active=False)
    assert (
        client.get(
            "/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + issued["access_token"]
        ).status_code
        == 401
    )
    intro = client.post(
        "/t/acme/oauth2/introspect",
        {"token": issued["access_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert intro.json() == {"active": False}


def test_prompt_consent_asks_even_when_the_app_skips_consent(
    client: Client, world: World, pickup: App
) -> None:
    sign_in(client, world.target)
    _v, challenge = pkce_pair()
    page = client.get(authorize_url("pickup", challenge=challenge, prompt="consent"))
    assert page.status_code == 200 and b"Allow App pickup?" in page.content


def test_no_refresh_token_for_an_app_without_the_grant(client: Client, world: World) -> None:
    app = make_app(world, client_id="norefresh", grant_types=("authorization_code",))
    code, verifier = get_code(client, world, app)
    body = exchange(client, app, code, verifier).json()
    assert "access_token" in body and "refresh_token" not in body


def test_logout_hint_must_be_an_id_token(client: Client, world: World, pickup: App) -> None:
    issued = _tokens(client, world, pickup)
    access = client.get("/t/acme/oidc/logout", {"id_token_hint": issued["access_token"]})
    assert access.status_code == 400


# --- introspection: who may learn about a token (RFC 7662 §4) ------------------------------------


def _introspect(client: Client, app: App, raw: str) -> dict[str, Any]:
    response = client.post(
        "/t/acme/oauth2/introspect", {"token": raw}, HTTP_AUTHORIZATION=basic(app.client_id, app.secret)
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def test_introspection_tells_another_client_of_the_tenant_nothing(
    client: Client, world: World, pickup: App
) -> None:
    reports = make_app(world, client_id="reports")
    issued = _tokens(client, world, pickup)
    for raw in (issued["access_token"], issued["refresh_token"]):
        assert _introspect(client, reports, raw) == {"active": False}
        own = _introspect(client, pickup, raw)
        assert own["active"] is True and own["sub"] == str(world.target.pk) and own["client_id"] == "pickup"


def test_introspection_answers_a_client_the_access_tokens_audience_names(
    client: Client, world: World, pickup: App
) -> None:
    """actas's own tokens name only their client in ``aud``; a token whose audience names a
    resource server too (another application of the tenant) is answered to that one, and still
    to no third client."""
    import datetime as dt

    from django.utils import timezone
    from oauth2_provider.models import set_token_value

    from identity.oauth.claims import access_token_claims

    reports, stranger = make_app(world, client_id="reports"), make_app(world, client_id="stranger")
    now = int(time.time())
    claims = access_token_claims(
        tenant=world.root,
        org=world.root,
        client=pickup.app,
        user=world.target,
        scopes=["openid"],
        issued_at=now,
        expires_in=600,
        extra={"aud": ["pickup", "reports"]},
    )
    raw = tokens.mint(claims, typ="at+jwt")
    row = AccessToken(
        user=world.target,
        application=pickup.app,
        scope="openid",
        expires=timezone.now() + dt.timedelta(seconds=600),
    )
    set_token_value(row, raw)
    row.save()
    answer = _introspect(client, reports, raw)
    assert answer["active"] is True and answer["aud"] == ["pickup", "reports"]
    assert answer["client_id"] == "pickup" and answer["sub"] == str(world.target.pk)
    assert _introspect(client, stranger, raw) == {"active": False}
