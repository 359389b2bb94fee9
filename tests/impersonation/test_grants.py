"""Subject tokens at /authorize and the RFC 8693 token exchange."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from oauth2_provider.models import AccessToken

from identity.audit.models import AuditEvent
from identity.models import SSOSession
from identity.oauth import tokens
from impersonation.models import ImpersonationSession, SubjectToken
from tests.conftest import World, sign_in
from tests.identity.oauth_helpers import REDIRECT, App, basic
from tests.impersonation.helpers import (
    Artifacts,
    exchange_tokens,
    fragment,
    get_subject_token,
    impersonation_app,
    query,
    subject_authorize_url,
)

ISS = "http://127.0.0.1:8000/t/acme/oauth2/token"


@pytest.fixture
def pickup(world: World) -> App:
    return impersonation_app(world)


def _claims(raw: str, typ: str = "at+jwt") -> dict[str, Any]:
    return tokens.verify(raw, typ=typ, issuer=ISS, audience="pickup")


def test_subject_token_then_exchange_gives_a_token_for_the_target_with_act(
    client: Client, world: World, pickup: App
) -> None:
    artifacts = get_subject_token(client, world, pickup)
    subject = _claims(artifacts.subject_token, typ="jwt")
    assert subject["sub"] == str(world.target.pk)
    assert subject["may_act"] == {"sub": str(world.impersonator.pk)}
    assert subject["exp"] - subject["iat"] == 180
    assert "internal_user_impersonate" not in subject["scope"].split()
    actor = _claims(artifacts.id_token, typ="JWT")
    assert actor["sub"] == str(world.impersonator.pk) and actor["nonce"] == "n-1"

    response = exchange_tokens(client, pickup, artifacts)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["token_type"] == "Bearer" and "refresh_token" in body
    access = _claims(body["access_token"])
    assert access["sub"] == str(world.target.pk)
    assert access["act"] == {"sub": str(world.impersonator.pk)}
    session = ImpersonationSession.objects.get()
    assert access["impersonation_id"] == str(session.pk)
    assert set(access["scope"].split()) == {"openid", "internal_user_mgt_view"}
    assert access["exp"] <= int(session.expires_at.timestamp())
    assert session.reason == "Ticket 42" and session.subject_id == world.target.pk
    assert session.sso_session.user_id == world.impersonator.pk
    start = AuditEvent.objects.get(action="impersonation-start")
    assert start.impersonator_id == world.impersonator.pk and start.subject_id == world.target.pk


def test_refresh_twice_keeps_act(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    for _ in range(2):
        refreshed = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
        )
        assert refreshed.status_code == 200, refreshed.content
        body = refreshed.json()
        access = _claims(body["access_token"])
        assert access["act"] == {"sub": str(world.impersonator.pk)} and access["sub"] == str(world.target.pk)
        assert "internal_user_impersonate" not in body["scope"].split()


def test_subject_token_is_single_use(client: Client, world: World, pickup: App) -> None:
    artifacts = get_subject_token(client, world, pickup)
    assert exchange_tokens(client, pickup, artifacts).status_code == 200
    again = exchange_tokens(client, pickup, artifacts)
    assert again.status_code == 400 and again.json()["error"] == "invalid_request"


def test_confirmation_page_is_never_skipped_and_cancel_denies(
    client: Client, world: World, pickup: App
) -> None:
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target))
    assert page.status_code == 200 and b"Impersonate Target?" in page.content
    assert b'value="Ticket 42"' in page.content or b">Ticket 42<" in page.content
    cancelled = client.post(
        page.context["action"], {"pending": page.context["pending"], "decision": "cancel"}
    )
    assert fragment(cancelled["Location"])["error"] == "access_denied"
    assert not SubjectToken.objects.exists()


def test_confirmation_is_csrf_protected(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target))
    forged = Client(enforce_csrf_checks=True)
    forged.cookies = client.cookies
    response = forged.post(
        page.context["action"], {"pending": page.context["pending"], "decision": "impersonate", "reason": "x"}
    )
    assert response.status_code == 403 and not SubjectToken.objects.exists()


def test_reason_is_required_by_default(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target))
    response = client.post(
        page.context["action"],
        {"pending": page.context["pending"], "decision": "impersonate", "reason": "  "},
    )
    assert response.status_code == 400 and b"Give a reason" in response.content
    assert not SubjectToken.objects.exists()


def test_stale_sign_in_must_reauthenticate(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    session = SSOSession.objects.get(user=world.impersonator, ended_at__isnull=True)
    SSOSession.objects.filter(pk=session.pk).update(auth_time=session.auth_time.replace(year=2020))
    response = client.get(subject_authorize_url("pickup", world.target))
    assert response.status_code == 302 and "reauth=1" in response["Location"]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"requested_subject": ""}, "invalid_request"),
        ({"nonce": ""}, "invalid_request"),
        ({"scope": "openid internal_user_mgt_view"}, "invalid_scope"),
    ],
)
def test_authorize_parameter_errors(
    client: Client, world: World, pickup: App, change: dict[str, str], error: str
) -> None:
    sign_in(client, world.impersonator)
    response = client.get(subject_authorize_url("pickup", world.target, **change))
    assert response.status_code == 302 and fragment(response["Location"])["error"] == error


def test_plain_subject_token_answers_in_the_query(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    page = client.get(subject_authorize_url("pickup", world.target, response_type="subject_token"))
    done = client.post(
        page.context["action"], {"pending": page.context["pending"], "decision": "impersonate", "reason": "r"}
    )
    params = query(done["Location"])
    assert "subject_token" in params and "id_token" not in params and params["state"] == "s-1"
    # Either word order is the same response type.
    other = client.get(subject_authorize_url("pickup", world.target, response_type="subject_token id_token"))
    assert other.status_code == 200


def test_app_without_subject_token_is_unauthorized_client(client: Client, world: World) -> None:
    app = impersonation_app(world, client_id="nosubject")
    app.app.subject_token_enabled = False
    app.app.save()
    sign_in(client, world.impersonator)
    response = client.get(subject_authorize_url("nosubject", world.target))
    assert fragment(response["Location"])["error"] == "unauthorized_client"


def test_unregistered_redirect_gets_a_page_not_a_redirect(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.impersonator)
    response = client.get(subject_authorize_url("pickup", world.target, redirect_uri="https://evil.example/"))
    assert response.status_code == 400 and "Location" not in response


# --- refusals: generic to the client, detailed in the audit trail ------------------------------------


def _refused(client: Client, world: World, subject_id: str) -> tuple[Any, AuditEvent]:
    from tests.impersonation.helpers import REDIRECT as _  # noqa: F401

    response = client.get(subject_authorize_url("pickup", world.target, requested_subject=subject_id))
    assert response.status_code == 302 and fragment(response["Location"])["error"] == "access_denied"
    return response, AuditEvent.objects.filter(action="impersonation-refused").latest("seq")


def test_each_refusal_looks_the_same_to_the_client(client: Client, world: World, pickup: App) -> None:
    from identity.services.users import user_set_flags

    sign_in(client, world.impersonator)
    codes = {}
    _, event = _refused(client, world, "00000000-0000-0000-0000-000000000000")
    codes["unknown"] = event.data["code"]
    _, event = _refused(client, world, str(world.impersonator.pk))
    codes["self"] = event.data["code"]
    _, event = _refused(client, world, str(world.eu_user.pk))
    codes["elsewhere"] = event.data["code"]
    assert codes == {"unknown": "unknown-subject", "self": "self", "elsewhere": "not-resident"}
    for flag, code in (
        ("is_locked", "subject-locked"),
        ("is_protected", "subject-protected"),
        ("is_active", "subject-disabled"),
    ):
        user_set_flags(
            actor=None, user=world.target, **{flag: flag == "is_active" and False or flag != "is_active"}
        )
        _, event = _refused(client, world, str(world.target.pk))
        assert event.data["code"] == code, flag
        world.target.refresh_from_db()
        user_set_flags(actor=None, user=world.target, is_active=True, is_locked=False, is_protected=False)


def test_without_permission_is_refused(client: Client, world: World, pickup: App) -> None:
    sign_in(client, world.admin)  # admin holds no role on Pickup
    response = client.get(subject_authorize_url("pickup", world.target))
    assert fragment(response["Location"])["error"] == "access_denied"
    assert AuditEvent.objects.get(action="impersonation-refused").data["code"] == "no-permission"


def test_dominance_refuses_a_target_with_more_rights(client: Client, world: World, pickup: App) -> None:
    from identity.services.roles import role_assign

    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.target)
    sign_in(client, world.impersonator)
    response = client.get(subject_authorize_url("pickup", world.target))
    assert fragment(response["Location"])["error"] == "access_denied"
    assert AuditEvent.objects.get(action="impersonation-refused").data["code"] == "dominance"


# --- the exchange's own checks --------------------------------------------------------------------------


def test_exchange_checks_tokens(client: Client, world: World, pickup: App) -> None:
    artifacts = get_subject_token(client, world, pickup)
    kid = tokens.current_keyset().active.kid
    cases = {
        "id token as subject": Artifacts(artifacts.id_token, artifacts.id_token),
        "subject as actor": Artifacts(artifacts.subject_token, artifacts.subject_token),
        "garbage": Artifacts("garbage", artifacts.id_token),
        "alg none": Artifacts(
            tokens.jwt.encode({"sub": "x"}, "", algorithm="none", headers={"kid": kid, "typ": "jwt"}),
            artifacts.id_token,
        ),
        "megabyte": Artifacts("a" * 1_000_000, artifacts.id_token),
    }
    for name, forged in cases.items():
        response = exchange_tokens(client, pickup, forged)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", name
    # The genuine pair still works afterwards: nothing above consumed it.
    assert exchange_tokens(client, pickup, artifacts).status_code == 200


def test_exchange_by_another_client_is_invalid_target(client: Client, world: World, pickup: App) -> None:
    other = impersonation_app(world, client_id="other")
    artifacts = get_subject_token(client, world, pickup)
    response = exchange_tokens(client, other, artifacts)
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


def test_exchange_honours_audience_and_resource(client: Client, world: World, pickup: App) -> None:
    """RFC 8693 §2.1: an audience actas does not serve is invalid_target (and uses nothing up);
    one it serves (an API the client is authorized for) is in the token's aud."""
    artifacts = get_subject_token(client, world, pickup)
    for param in ("audience", "resource"):
        refused = exchange_tokens(client, pickup, artifacts, **{param: "https://elsewhere.example/api"})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_target", param
    assert not ImpersonationSession.objects.exists()
    issued = exchange_tokens(client, pickup, artifacts, audience="system:impersonation")
    assert issued.status_code == 200, issued.content
    claims = tokens.verify(
        issued.json()["access_token"], typ="at+jwt", issuer=ISS, audience="system:impersonation"
    )
    assert claims["aud"] == ["pickup", "system:impersonation"] and claims["act"]["sub"] == str(
        world.impersonator.pk
    )


def test_exchange_needs_both_tokens_and_the_grant(client: Client, world: World, pickup: App) -> None:
    artifacts = get_subject_token(client, world, pickup)
    missing = exchange_tokens(client, pickup, artifacts, actor_token="")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    wrong_type = exchange_tokens(client, pickup, artifacts, subject_token_type="urn:x")
    assert wrong_type.json()["error"] == "invalid_request"
    wrong_secret = App(pickup.app, "wrong-secret")
    bad_client = exchange_tokens(client, wrong_secret, artifacts)
    assert bad_client.status_code == 401 and bad_client.json()["error"] == "invalid_client"
    # None of it used the subject token up.
    assert exchange_tokens(client, pickup, artifacts).status_code == 200


def test_actor_of_another_session_is_refused(client: Client, world: World, pickup: App) -> None:
    artifacts = get_subject_token(client, world, pickup)
    other_browser = Client()
    theirs = get_subject_token(other_browser, world, pickup)
    mixed = Artifacts(artifacts.subject_token, theirs.id_token)
    response = exchange_tokens(client, pickup, mixed)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_narrowing_scope(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup), scope="openid").json()
    assert body["scope"] == "openid"


def test_read_only_keeps_only_read_only_scopes(client: Client, world: World, pickup: App) -> None:
    from identity.models import Scope

    Scope.objects.filter(name="internal_user_mgt_view").update(read_only=False)
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup, read_only=True)).json()
    assert body["scope"] == "openid"
    assert ImpersonationSession.objects.get().read_only is True


# --- the bound SSO session ---------------------------------------------------------------------------------


def test_later_sign_ins_in_the_browser_are_for_the_target(client: Client, world: World, pickup: App) -> None:
    from tests.identity.oauth_helpers import authorize_url, exchange, pkce_pair

    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    verifier, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, scope="openid internal_user_mgt_view"))
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    code = query(response["Location"])["code"]
    body = exchange(client, pickup, code, verifier).json()
    access = _claims(body["access_token"])
    assert access["sub"] == str(world.target.pk) and access["act"] == {"sub": str(world.impersonator.pk)}
    identity = _claims(body["id_token"], typ="JWT")
    assert identity["sub"] == str(world.target.pk) and identity["act"] == {"sub": str(world.impersonator.pk)}


def test_sign_in_to_an_app_the_impersonator_may_not_use_is_refused(
    client: Client, world: World, pickup: App
) -> None:
    from tests.identity.oauth_helpers import REDIRECT, authorize_url, make_app, pkce_pair, query_of

    make_app(world, client_id="payroll")
    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    _v, challenge = pkce_pair()
    response = client.get(authorize_url("payroll", challenge=challenge))
    # The client and redirect URI are valid: the application hears why (OIDC Core §3.1.2.6).
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT)
    answer = query_of(response["Location"])
    assert answer["error"] == "access_denied" and answer["state"] == "st-123" and "code" not in answer
    assert "may not impersonate" in answer["error_description"]
    assert ImpersonationSession.objects.get().ended_at is None  # refused, not ended


def test_no_second_target_and_no_chaining(client: Client, world: World, pickup: App) -> None:
    from tests.conftest import make_user

    second = make_user(world.root, "second")
    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    response = client.get(subject_authorize_url("pickup", second))
    assert fragment(response["Location"])["error"] == "access_denied"
    assert AuditEvent.objects.filter(action="impersonation-refused").latest("seq").data["code"] == "chained"


# --- ending ---------------------------------------------------------------------------------------------


def _live(client: Client, pickup: App, raw: str) -> bool:
    return bool(
        client.post(
            "/t/acme/oauth2/introspect", {"token": raw}, HTTP_AUTHORIZATION=basic("pickup", pickup.secret)
        ).json()["active"]
    )


def test_end_revokes_everything_and_keeps_the_impersonator_signed_in(
    client: Client, world: World, pickup: App
) -> None:
    from tests.identity.oauth_helpers import authorize_url, exchange, pkce_pair

    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    assert _live(client, pickup, body["access_token"])
    old_key = client.session.session_key or ""
    response = client.post("/t/acme/impersonation/end")
    assert response.status_code == 200 and b"Impersonation ended" in response.content
    assert b"This browser is still signed in as you, impersonator." in response.content
    assert not _live(client, pickup, body["access_token"])
    assert (
        client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + body["access_token"]).status_code
        == 401
    )
    refresh = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    session = ImpersonationSession.objects.get()
    assert session.ended_at is not None and session.end_reason == "ended"
    assert session.sso_session.ended_at is not None
    assert not AccessToken.objects.filter(user=world.target).exists()
    assert AuditEvent.objects.filter(action="impersonation-end").exists()
    # The impersonator's browser goes on with a sign-in of their own (a new id and cookie):
    # signing in to the application again is as themself, without a password.
    live = SSOSession.objects.get(user=world.impersonator, ended_at__isnull=True)
    assert live.pk != session.sso_session_id and client.session["actas.sso.sid"] == live.sid
    assert client.session.session_key != old_key
    verifier, challenge = pkce_pair()
    again = client.get(authorize_url("pickup", challenge=challenge, scope="openid"))
    assert again.status_code == 302 and again["Location"].startswith(REDIRECT)
    own = exchange(client, pickup, query(again["Location"])["code"], verifier).json()
    claims = _claims(own["access_token"])
    assert claims["sub"] == str(world.impersonator.pk) and "act" not in claims
    # The old cookie resumes nothing.
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_key
    assert replay.get(authorize_url("pickup", challenge=challenge, scope="openid"))["Location"].startswith(
        "/t/acme/login/"
    )


def test_end_when_the_sign_ins_own_time_is_up_signs_the_browser_out(
    client: Client, world: World, pickup: App
) -> None:
    import datetime as dt

    import time_machine
    from django.conf import settings
    from django.utils import timezone

    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    session = ImpersonationSession.objects.get()
    created = session.sso_session.created_at
    SSOSession.objects.filter(pk=session.sso_session_id).update(
        created_at=created - dt.timedelta(seconds=settings.ACTAS_SSO_SESSION_MAX_AGE)
    )
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=1), tick=False):
        response = client.post("/t/acme/impersonation/end")
    assert response.status_code == 200 and b"this browser is signed out" in response.content
    assert not SSOSession.objects.filter(user=world.impersonator, ended_at__isnull=True).exists()
    assert not AuditEvent.objects.filter(action="login-continued").exists()


def test_end_from_the_application_with_its_token(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    response = Client().post(
        "/t/acme/api/impersonation/v1/end", HTTP_AUTHORIZATION="Bearer " + body["access_token"]
    )
    assert response.status_code == 200 and response.json()["ended"] is True
    assert not _live(client, pickup, body["access_token"])
    assert (
        Client().post("/t/acme/api/impersonation/v1/end", HTTP_AUTHORIZATION="Bearer garbage").status_code
        == 401
    )


def test_the_cap_bounds_every_token_and_ends_it(client: Client, world: World, pickup: App) -> None:
    import time_machine

    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    session = ImpersonationSession.objects.get()
    assert _claims(body["access_token"])["exp"] <= session.expires_at.timestamp()
    with time_machine.travel(session.expires_at.timestamp() - 1, tick=False):
        late = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
            HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
        )
        assert late.status_code == 200
        last = late.json()
        assert _claims(last["access_token"])["exp"] <= session.expires_at.timestamp()
    with time_machine.travel(session.expires_at.timestamp() + 1, tick=False):
        after = client.post(
            "/t/acme/oauth2/token",
            {"grant_type": "refresh_token", "refresh_token": last["refresh_token"]},
            HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
        )
        assert after.status_code == 400 and after.json()["error"] == "invalid_grant"
        session.refresh_from_db()
        assert session.end_reason == "expired"
        assert client.get("/t/acme/console/").status_code == 302  # the bound SSO session is over


@pytest.mark.parametrize("change", ["promote-target", "demote-impersonator", "disable-impersonator"])
def test_mid_session_changes_end_it_and_its_refresh_token(
    client: Client, world: World, pickup: App, change: str
) -> None:
    from identity.services.roles import role_assign, role_unassign
    from identity.services.users import user_set_flags
    from tests.impersonation.helpers import impersonator_role

    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    if change == "promote-target":
        role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.target)
    elif change == "demote-impersonator":
        role_unassign(actor=None, role=impersonator_role(), org=world.root, user=world.impersonator)
    else:
        user_set_flags(actor=None, user=world.impersonator, is_active=False)
    refresh = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    session = ImpersonationSession.objects.get()
    assert session.ended_at is not None and session.end_reason == "policy"
    assert not _live(client, pickup, body["access_token"])
    _ = time


# --- organization switch ----------------------------------------------------------------------------


def _switch(client: Client, app: App, token: str, org: Any, **extra: str) -> Any:
    data = {"grant_type": "organization_switch", "token": token, "switching_organization": str(org.pk)}
    data.update(extra)
    return client.post("/t/acme/oauth2/token", data, HTTP_AUTHORIZATION=basic(app.client_id, app.secret))


def test_organization_switch_carries_act_into_a_child_org(client: Client, world: World, pickup: App) -> None:
    from identity.models import Role
    from identity.services.roles import role_assign

    role_assign(actor=None, role=Role.objects.get(name="pickup viewer"), org=world.eu, user=world.target)
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    switched = _switch(client, pickup, body["access_token"], world.eu, scope="openid internal_user_mgt_view")
    assert switched.status_code == 200, switched.content
    access = _claims(switched.json()["access_token"])
    assert access["org_id"] == str(world.eu.pk) and access["org_name"] == "Acme EU"
    assert access["user_org"] == str(world.root.pk) and access["sub"] == str(world.target.pk)
    assert access["act"] == {"sub": str(world.impersonator.pk)}
    assert set(access["scope"].split()) == {"openid", "internal_user_mgt_view"}
    session = ImpersonationSession.objects.get()
    assert access["exp"] <= session.expires_at.timestamp()
    # Ending the impersonation revokes the switched token too.
    client.post("/t/acme/impersonation/end")
    assert not _live(client, pickup, switched.json()["access_token"])


def test_organization_switch_refusals(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    token = body["access_token"]
    # Not a member of Acme US; Acme itself is not below the token's organization.
    for org in (world.us, world.root):
        response = _switch(client, pickup, token, org)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    for garbage in ("not-a-token", token[:-3] + "abc"):
        response = _switch(client, pickup, garbage, world.eu)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    bad_org = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "organization_switch", "token": token, "switching_organization": "nope"},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert bad_org.status_code == 400 and bad_org.json()["error"] == "invalid_grant"
    missing = client.post(
        "/t/acme/oauth2/token",
        {"grant_type": "organization_switch", "token": token},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert missing.json()["error"] == "invalid_request"
    # Another client's token is not this client's to switch.
    other = impersonation_app(world, client_id="other2")
    stolen = _switch(client, other, token, world.eu)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"


def test_organization_switch_needs_the_app_shared_there(client: Client, world: World) -> None:
    app = impersonation_app(world, client_id="solo", share=False)
    body = exchange_tokens(client, app, get_subject_token(client, world, app)).json()
    response = _switch(client, app, body["access_token"], world.eu)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_me_organizations_lists_where_the_user_may_switch(client: Client, world: World, pickup: App) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    response = Client().get(
        "/t/acme/api/users/v1/me/organizations", HTTP_AUTHORIZATION="Bearer " + body["access_token"]
    )
    assert response.status_code == 200
    assert response.json()["organizations"] == [
        {"id": str(world.eu.pk), "name": "Acme EU", "parentId": str(world.root.pk)}
    ]
    assert Client().get("/t/acme/api/users/v1/me/organizations").status_code == 401
    bad = Client().get("/t/acme/api/users/v1/me/organizations", HTTP_AUTHORIZATION="Bearer nope")
    assert bad.status_code == 401


def test_no_applications_or_secrets_are_created_while_impersonating(
    client: Client, world: World, pickup: App
) -> None:
    """impersonator is also a Console administrator here; the bound browser may not create an
    application or a secret."""
    from identity.models import Application
    from identity.services.roles import role_assign

    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.impersonator)
    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    response = client.post(
        "/t/acme/console/applications/create/",
        {"name": "Sneaky", "client_type": "confidential", "grant_types": ["client_credentials"]},
    )
    assert response.status_code == 403 and not Application.objects.filter(name="Sneaky").exists()
    secret = client.post(f"/t/acme/console/applications/{pickup.app.pk}/protocol/secret/")
    assert secret.status_code == 403


def test_hostile_subject_and_actor_tokens(client: Client, world: World, pickup: App) -> None:
    import datetime as dt

    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization

    artifacts = get_subject_token(client, world, pickup)
    genuine = tokens.verify(artifacts.subject_token, typ="jwt", issuer=ISS, audience="pickup")
    key = tokens.current_keyset().active
    public_pem = key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def forge(
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        signer: Any = None,
        alg: str = "RS256",
    ) -> str:
        return pyjwt.encode(
            claims,
            signer or key.private_key,
            algorithm=alg,
            headers=headers or {"kid": key.kid, "typ": "jwt"},
        )

    def hs256(claims: dict[str, Any], secret: bytes) -> str:
        import base64
        import hashlib
        import hmac
        import json

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        head = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "jwt"}).encode())
        body = b64(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(signature)}"

    now = int(dt.datetime.now(dt.UTC).timestamp())
    cases: dict[str, tuple[Artifacts, str]] = {
        "HS256 with the public key": (
            Artifacts(hs256(genuine, public_pem), artifacts.id_token),
            "invalid_request",
        ),
        "wrong kid": (
            Artifacts(forge(genuine, headers={"kid": "nope", "typ": "jwt"}), artifacts.id_token),
            "invalid_request",
        ),
        "expired": (
            Artifacts(forge({**genuine, "exp": now - 3600, "iat": now - 4000}), artifacts.id_token),
            "invalid_request",
        ),
        "future nbf": (
            Artifacts(forge({**genuine, "nbf": now + 3600}), artifacts.id_token),
            "invalid_request",
        ),
        "wrong iss": (
            Artifacts(forge({**genuine, "iss": "https://evil.example/"}), artifacts.id_token),
            "invalid_target",
        ),
        "wrong aud": (
            Artifacts(forge({**genuine, "aud": "someone-else"}), artifacts.id_token),
            "invalid_target",
        ),
        "actor is not may_act": (
            Artifacts(forge({**genuine, "may_act": {"sub": str(world.admin.pk)}}), artifacts.id_token),
            "invalid_request",
        ),
        "no may_act": (
            Artifacts(forge({k: v for k, v in genuine.items() if k != "may_act"}), artifacts.id_token),
            "invalid_request",
        ),
        "an access token as subject": (
            Artifacts(forge(genuine, headers={"kid": key.kid, "typ": "at+jwt"}), artifacts.id_token),
            "invalid_request",
        ),
    }
    for name, (forged, error) in cases.items():
        response = exchange_tokens(client, pickup, forged)
        assert response.status_code == 400 and response.json()["error"] == error, (name, response.content)
    actor = tokens.verify(artifacts.id_token, typ="JWT", issuer=ISS, audience="pickup")
    impersonated_actor = forge({**actor, "act": {"sub": "x"}}, headers={"kid": key.kid, "typ": "JWT"})
    response = exchange_tokens(client, pickup, Artifacts(artifacts.subject_token, impersonated_actor))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    # None of it consumed the genuine pair.
    assert exchange_tokens(client, pickup, artifacts).status_code == 200


def test_ending_never_touches_the_targets_own_tokens(client: Client, world: World, pickup: App) -> None:
    """The target's own sign-in, in their own browser, survives the impersonation ending and
    the impersonator signing out (DOT would revoke every token of the user)."""
    from tests.identity.oauth_helpers import exchange, get_code

    own_browser = Client()
    code, verifier = get_code(own_browser, world, pickup, user=world.target)
    own = exchange(own_browser, pickup, code, verifier).json()
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    client.post("/t/acme/impersonation/end")
    assert not _live(client, pickup, body["access_token"])
    assert _live(client, pickup, own["access_token"])
    # Signing out of an impersonating browser ends the impersonation, and only its tokens.
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    page = client.get("/t/acme/oidc/logout")
    assert page.status_code == 200
    client.post("/t/acme/oidc/logout", {"confirm": "yes"})
    assert ImpersonationSession.objects.filter(ended_at__isnull=True).count() == 0
    assert ImpersonationSession.objects.order_by("-started_at").first().end_reason == "signed-out"  # type: ignore[union-attr]
    assert not _live(client, pickup, body["access_token"])
    assert _live(client, pickup, own["access_token"])


def test_id_tokens_of_impersonated_sign_ins_end_with_the_session(
    client: Client, world: World, pickup: App
) -> None:
    from tests.identity.oauth_helpers import authorize_url, exchange, pkce_pair

    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    session = ImpersonationSession.objects.get()
    ImpersonationSession.objects.filter(pk=session.pk).update(
        expires_at=session.started_at + (session.expires_at - session.started_at) / 60
    )
    session.refresh_from_db()
    verifier, challenge = pkce_pair()
    code = query(client.get(authorize_url("pickup", challenge=challenge))["Location"])["code"]
    body = exchange(client, pickup, code, verifier).json()
    for raw, typ in ((body["access_token"], "at+jwt"), (body["id_token"], "JWT")):
        assert _claims(raw, typ=typ)["exp"] <= session.expires_at.timestamp() + 1


def test_a_public_client_exchange_needs_its_code_verifier(client: Client, world: World) -> None:
    """My Account is a public client: the exchange carries the verifier of the authorize request."""
    from identity.services.applications import application_share
    from tests.identity.oauth_helpers import pkce_pair

    myaccount = world.system.myaccount
    application_share(actor=None, application=myaccount, mode="all")
    verifier, challenge = pkce_pair()
    sign_in(client, world.impersonator)
    page = client.get(
        subject_authorize_url(
            myaccount.client_id,
            world.target,
            redirect_uri=myaccount.redirect_uris.split()[0],
            scope="openid internal_user_impersonate",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
    )
    assert page.status_code == 200, page.content[:300]
    done = client.post(
        page.context["action"],
        {"pending": page.context["pending"], "decision": "impersonate", "reason": "help"},
    )
    answer = fragment(done["Location"])
    data = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "client_id": myaccount.client_id,
        "subject_token": answer["subject_token"],
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "actor_token": answer["id_token"],
        "actor_token_type": "urn:ietf:params:oauth:token-type:id_token",
    }
    wrong = client.post("/t/acme/oauth2/token", {**data, "code_verifier": pkce_pair()[0]})
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_request"
    # The refused try used the subject token up: a fresh one with the right verifier works.
    page = client.get(
        subject_authorize_url(
            myaccount.client_id,
            world.target,
            redirect_uri=myaccount.redirect_uris.split()[0],
            scope="openid internal_user_impersonate",
            code_challenge=challenge,
            code_challenge_method="S256",
        )
    )
    done = client.post(
        page.context["action"],
        {"pending": page.context["pending"], "decision": "impersonate", "reason": "help"},
    )
    answer = fragment(done["Location"])
    right = client.post(
        "/t/acme/oauth2/token",
        {
            **data,
            "subject_token": answer["subject_token"],
            "actor_token": answer["id_token"],
            "code_verifier": verifier,
        },
    )
    assert right.status_code == 200, right.content
    access = tokens.verify(
        right.json()["access_token"], typ="at+jwt", issuer=ISS, audience=myaccount.client_id
    )
    assert access["act"] == {"sub": str(world.impersonator.pk)}


# --- regressions from the impersonation security review ------------------------------------------------


def test_a_second_subject_token_of_the_same_sign_in_cannot_widen_a_read_only_session(
    client: Client, world: World, pickup: App
) -> None:
    from identity.models import Scope

    Scope.objects.filter(name="internal_user_mgt_view").update(read_only=False)
    read_only = get_subject_token(client, world, pickup, read_only=True)
    writable = get_subject_token(client, world, pickup, signed_in=True)
    assert exchange_tokens(client, pickup, read_only).json()["scope"] == "openid"
    second = exchange_tokens(client, pickup, writable)
    assert second.status_code == 400 and second.json()["error"] == "invalid_request"
    assert SubjectToken.objects.filter(used_at__isnull=True).count() == 0


def test_an_organization_switch_that_fails_the_recheck_ends_the_session(
    client: Client, world: World, pickup: App
) -> None:
    from identity.services.roles import role_assign

    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    role_assign(actor=None, role=world.system.administrator, org=world.root, user=world.target)
    response = _switch(client, pickup, body["access_token"], world.eu)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    session = ImpersonationSession.objects.get()
    assert session.ended_at is not None and session.end_reason == "policy"
    assert not _live(client, pickup, body["access_token"])


def test_impersonated_tokens_die_with_the_session_even_before_it_is_marked_ended(
    client: Client, world: World, pickup: App
) -> None:
    import time_machine

    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    session = ImpersonationSession.objects.get()
    refresh = client.post(
        "/t/acme/oauth2/introspect",
        {"token": body["refresh_token"]},
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    ).json()
    assert refresh["active"] is True and refresh["exp"] <= session.expires_at.timestamp()
    assert refresh["act"] == {"sub": str(world.impersonator.pk)}
    with time_machine.travel(session.expires_at.timestamp() + 5, tick=False):
        assert not _live(client, pickup, body["refresh_token"])
    # Ended behind the token path's back (a concurrent End): every token of it is refused at once.
    from django.utils import timezone

    ImpersonationSession.objects.filter(pk=session.pk).update(ended_at=timezone.now(), end_reason="ended")
    assert not _live(client, pickup, body["access_token"])
    assert (
        client.get("/t/acme/oauth2/userinfo", HTTP_AUTHORIZATION="Bearer " + body["access_token"]).status_code
        == 401
    )


def test_the_target_is_emailed_when_an_impersonation_starts(
    client: Client, world: World, pickup: App
) -> None:
    from identity.notifications.models import OutboxMessage

    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    message = OutboxMessage.objects.get(kind="impersonation-started")
    assert message.to_email == world.target.email
    # Once per session: a refresh sends nothing more.
    assert OutboxMessage.objects.filter(kind="impersonation-started").count() == 1


def test_no_email_when_the_organization_turned_it_off(client: Client, world: World, pickup: App) -> None:
    from identity.notifications.models import OutboxMessage
    from organizations.services import organization_settings_update

    organization_settings_update(actor=None, org=world.root, impersonation_email_enabled=False)
    exchange_tokens(client, pickup, get_subject_token(client, world, pickup))
    assert not OutboxMessage.objects.filter(kind="impersonation-started").exists()


def test_actor_token_for_another_audience_is_invalid_request(
    client: Client, world: World, pickup: App
) -> None:
    other = impersonation_app(world, client_id="other3")
    mine = get_subject_token(client, world, pickup)
    theirs = get_subject_token(Client(), world, other)
    response = exchange_tokens(client, pickup, Artifacts(mine.subject_token, theirs.id_token))
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --- issue 13 item 5 ------------------------------------------------------------------------------


def test_another_client_of_the_tenant_learns_nothing_of_an_impersonated_token(
    client: Client, world: World, pickup: App
) -> None:
    body = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()
    other = impersonation_app(world, client_id="other4")
    for raw in (body["access_token"], body["refresh_token"]):
        answer = client.post(
            "/t/acme/oauth2/introspect", {"token": raw}, HTTP_AUTHORIZATION=basic("other4", other.secret)
        )
        assert answer.status_code == 200 and answer.json() == {"active": False}
        own = client.post(
            "/t/acme/oauth2/introspect", {"token": raw}, HTTP_AUTHORIZATION=basic("pickup", pickup.secret)
        ).json()
        assert own["sub"] == str(world.target.pk) and own["act"] == {"sub": str(world.impersonator.pk)}


def test_fresh_refreshed_tokens_switch_and_a_switched_familys_tokens_stay_in_their_organization(
    client: Client, world: World, pickup: App
) -> None:
    """bench/run.py's "access tokens refused" (issue 13 item 5d): every freshly refreshed
    impersonated token of a root-organization family switches, however quickly refreshed one
    after the other; the refused ones were refreshed from the refresh token an
    ``organization_switch`` answered with (the bench's probe put it in its pool), so they are
    for Acme EU already, and a switch goes down the tree, never to the token's own organization."""
    from identity.models import Role
    from identity.services.roles import role_assign

    role_assign(actor=None, role=Role.objects.get(name="pickup viewer"), org=world.eu, user=world.target)

    def post(data: dict[str, str]) -> Any:
        return client.post("/t/acme/oauth2/token", data, HTTP_AUTHORIZATION=basic("pickup", pickup.secret))

    refresh_token = exchange_tokens(client, pickup, get_subject_token(client, world, pickup)).json()[
        "refresh_token"
    ]
    for _ in range(8):
        refreshed = post({"grant_type": "refresh_token", "refresh_token": refresh_token}).json()
        refresh_token = refreshed["refresh_token"]
        switched = _switch(client, pickup, refreshed["access_token"], world.eu)
        assert switched.status_code == 200, switched.content
    # The switch's own refresh token refreshes into Acme EU, with act ...
    again = post({"grant_type": "refresh_token", "refresh_token": switched.json()["refresh_token"]})
    assert again.status_code == 200, again.content
    access = _claims(again.json()["access_token"])
    assert access["org_id"] == str(world.eu.pk) and access["act"] == {"sub": str(world.impersonator.pk)}
    # ... and switching that token to Acme EU is the refusal the bench counted.
    refused = _switch(client, pickup, again.json()["access_token"], world.eu)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# --- an organization's impersonation reaches its applications ------------------------------------


def test_a_sign_in_at_the_organization_under_its_console_impersonation_is_the_target_with_act(
    client: Client, world: World, pickup: App
) -> None:
    """eu-admin impersonates eu-user from Acme EU's Console (channel console, through Acme EU's
    My Account); Pickup, launched from there, signs in at Acme EU's authorize endpoint and gets
    eu-user's tokens for Acme EU with act = eu-admin, redeemed at Acme EU's token endpoint."""
    from identity.models import Role
    from identity.services.roles import role_assign
    from tests.conftest import console_url
    from tests.identity.oauth_helpers import authorize_url, pkce_pair
    from tests.myaccount.helpers import follow, share_myaccount

    share_myaccount(world, [world.eu])
    role_assign(actor=None, role=world.system.impersonator, org=world.eu, user=world.eu_admin)
    role_assign(
        actor=None, role=Role.objects.get(name="pickup impersonator"), org=world.eu, user=world.eu_admin
    )
    sign_in(client, world.eu_admin)
    started = client.post(console_url(world.eu, f"users/{world.eu_user.pk}/impersonate/"), {"reason": "T-14"})
    assert started.status_code == 303, started.content[:300]  # to the user's Console page
    follow(client, started)
    session = ImpersonationSession.objects.get()
    assert (session.impersonator_id, session.subject_id, session.organization_id) == (
        world.eu_admin.pk,
        world.eu_user.pk,
        world.eu.pk,
    )

    eu = f"/t/acme/o/{world.eu.pk}"
    verifier, challenge = pkce_pair()
    response = client.get(authorize_url("pickup", challenge=challenge, scope="openid profile", base=eu))
    assert response.status_code == 302 and response["Location"].startswith(REDIRECT), response.content[:300]
    code = query(response["Location"])["code"]
    redeemed = client.post(
        f"{eu}/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        HTTP_AUTHORIZATION=basic("pickup", pickup.secret),
    )
    assert redeemed.status_code == 200, redeemed.content
    body = redeemed.json()
    access = _claims(body["access_token"])
    assert access["sub"] == str(world.eu_user.pk) and access["act"] == {"sub": str(world.eu_admin.pk)}
    assert access["org_id"] == str(world.eu.pk) and access["org_name"] == "Acme EU"
    assert access["impersonation_id"] == str(session.pk) and "user_org" not in access
    identity = _claims(body["id_token"], typ="JWT")
    assert identity["sub"] == str(world.eu_user.pk) and identity["act"] == {"sub": str(world.eu_admin.pk)}

    # The root organization's endpoint is not where this impersonation lives: refused, never
    # silently as eu-admin.
    _v, challenge = pkce_pair()
    root = client.get(authorize_url("pickup", challenge=challenge, scope="openid"))
    assert root.status_code == 302 and "/t/acme/login/" in root["Location"]
    # The tenant's endpoint with orgId=<Acme EU> hands the same request to Acme EU's.
    via_root = client.get(
        authorize_url("pickup", challenge=challenge, scope="openid", orgId=str(world.eu.pk))
    )
    assert via_root.status_code == 302 and via_root["Location"].startswith(f"{eu}/oauth2/authorize?")
    code = query(client.get(via_root["Location"])["Location"])["code"]
    assert code and ImpersonationSession.objects.get().ended_at is None
