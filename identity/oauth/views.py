"""The OAuth 2.0 / OpenID Connect endpoints of a tenant (DESIGN §2).

HTTP around :mod:`identity.oauth.web` (the authorization request) and
:mod:`identity.oauth.service` (the token request): thin views over django-oauth-toolkit's
oauthlib glue (``OAuthLibMixin``) with actas's server and validator. The authorize endpoint
runs the application's login flow through the sign-in page, narrows the scopes to what the
user holds, asks for consent unless the application skips it, and never redirects to an
unregistered URI.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import auth
from django.contrib.auth.decorators import login_not_required
from django.http import (
    HttpRequest,
    HttpResponse,
    JsonResponse,
)
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods, require_POST
from oauth2_provider.models import RefreshToken
from oauthlib.common import Request as OAuthlibRequest

from identity.access import access_org_in_tenant, access_tenant
from identity.csp import csp_redirecting_form
from identity.hooks import PrincipalRefused, impersonation_live_until, resolve_principal
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.oauth import web
from identity.oauth.bearer import bearer_token, live_access_token
from identity.oauth.service import token_request
from identity.oauth.web import (
    PENDING_PREFIX,
    SeeOther,
    authorize_context,
    client_redirect,
    error_page,
    form_unparseable,
    issue_authorization,
    json_error,
    logout_hint,
    no_store,
    oauth,
    oauth_response,
    oauthlib_parts,
    params_malformed,
)
from identity.ratelimit import introspect_rate_limited, token_rate_limited
from identity.services.consents import consent_remember
from identity.services.sessions import sso_session_end
from organizations.models import Organization


@csrf_exempt  # a POST only ever gets a redirect to the same GET
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@csp_redirecting_form
def authorize(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    return web.authorize(request, tenant, org)


CONSENT_MAX_AGE = 600


@never_cache
@require_POST
@csp_redirecting_form
def authorize_consent(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    """The answer to the consent screen (a CSRF-protected POST by the signed-in user)."""
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    if request.GET:
        # The answer carries nothing but the pending id: parameters oauthlib could read from
        # this URL are not accepted.
        return error_page(request, title="This request has expired", message="Return to the application.")
    pending_id = (request.POST.get("pending") or "")[:64]
    pending = request.session.pop(PENDING_PREFIX + pending_id, None) if pending_id else None
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    if (
        not isinstance(pending, dict)
        or session is None
        or pending.get("sid") != session.sid
        or pending.get("org") != str(current.pk)
        or timezone.now().timestamp() - float(pending.get("created", 0)) > CONSENT_MAX_AGE
    ):
        return error_page(
            request,
            title="This request has expired",
            message="Return to the application and sign in again.",
        )
    credentials = dict(pending["credentials"])
    context = authorize_context(
        tenant=tenant_org, org=current, client_id=str(credentials.get("client_id", ""))
    )
    application = context.client
    if application is None:
        return error_page(request, title="Unknown application", message="No such application.")
    allow = request.POST.get("decision") == "allow"
    try:
        principal = resolve_principal(session=session, application=application, org=current)
    except PrincipalRefused as refusal:
        return error_page(
            request, title="You cannot sign in to this application now", message=refusal.message, status=403
        )
    if principal.impersonator is not None or principal.user.pk != session.user_id:
        # The session started impersonating meanwhile: an earlier consent screen is void.
        return error_page(request, title="This request has expired", message="Return to the application.")
    credentials.update({"actas_org": current, "actas_sso_session": session, "actas_principal": principal})
    if allow:
        # Remembered: the next sign-in with these scopes (or silent renewal) skips the screen.
        consent_remember(user=principal.user, application=application, org=current, scopes=pending["scopes"])
    return issue_authorization(
        request,
        context=context,
        application=application,
        scopes=pending["scopes"],
        credentials=credentials,
        allow=allow,
    )


# --- token, revocation, introspection ------------------------------------------------------------


@csrf_exempt
@login_not_required
@require_POST
@token_rate_limited
def token(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    """HTTP around :func:`identity.oauth.service.token_request`, which builds the request's
    context once (tenant, organization, client) and runs the grant in one transaction."""
    if form_unparseable(request):
        return json_error("invalid_request", 400, "The request is malformed.")
    uri, _method, _body, headers = oauthlib_parts(request)
    answer = token_request(
        tenant_handle=tenant,
        org_id=org,
        uri=uri,
        params=[(k, v) for k, values in request.POST.lists() for v in values],
        headers=headers,
    )
    return oauth_response(answer.body, answer.status, answer.headers)


@csrf_exempt
@login_not_required
@require_POST
def revoke(request: HttpRequest, tenant: str) -> HttpResponse:
    """RFC 7009: a client revokes its own token; unknown tokens answer 200 all the same."""
    access_tenant(handle=tenant)
    if form_unparseable(request) or params_malformed(request.POST):
        return json_error("invalid_request", 400, "The request is malformed.")
    _url, headers, body, status = oauth.create_revocation_response(request)
    return oauth_response(body, status, headers)


def _introspection_client(request: HttpRequest) -> Application | None:
    """The confidential client of this tenant that authenticates the introspection call."""
    core = oauth.get_oauthlib_core()
    uri, http_method, body, headers = oauthlib_parts(request)
    oauthlib_request = OAuthlibRequest(uri, http_method, body, headers)
    if not core.server.request_validator.authenticate_client(oauthlib_request):
        return None
    client = oauthlib_request.client
    if not isinstance(client, Application) or client.client_type != Application.CLIENT_CONFIDENTIAL:
        return None
    return client


INACTIVE = {"active": False}


def _audience(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _may_introspect(client: Application, *, token_client_id: str, audience: list[str]) -> bool:
    """RFC 7662 §4: only the token's own client, or a resource server its audience names (an
    application of the tenant by client id; actas's own tokens name their client), learns
    anything about it; any other client is told the token is inactive."""
    return client.client_id == token_client_id or client.client_id in audience


@csrf_exempt
@login_not_required
@never_cache
@require_POST
@introspect_rate_limited
def introspect(request: HttpRequest, tenant: str) -> HttpResponse:
    """RFC 7662, for the tenant's confidential clients: a token is described only to its own
    client or to a resource server its audience names; to any other, it is inactive."""
    tenant_org = access_tenant(handle=tenant)
    if form_unparseable(request):
        return json_error("invalid_request", 400, "The request is malformed.")
    client = _introspection_client(request)
    if client is None:
        return json_error(
            "invalid_client", 401, "Client authentication failed.", **{"WWW-Authenticate": "Basic"}
        )
    raw = request.POST.get("token", "")
    if not raw or len(raw) > 16_384:
        return no_store(JsonResponse(INACTIVE))
    # token_type_hint is only a hint (RFC 7662 §2.1): both kinds are looked up.
    found = live_access_token(tenant_org, raw)
    if found is not None:
        claims, _stored = found
        if not _may_introspect(client, token_client_id=str(claims["client_id"]), audience=_audience(claims)):
            return no_store(JsonResponse(INACTIVE))
        answer: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer",
            **{
                k: claims[k]
                for k in (
                    "sub",
                    "client_id",
                    "scope",
                    "exp",
                    "iat",
                    "nbf",
                    "iss",
                    "aud",
                    "jti",
                    "aut",
                    "org_id",
                    "org_name",
                    "user_org",
                    "act",
                    "impersonation_id",
                )
                if k in claims
            },
        }
        return no_store(JsonResponse(answer))
    refresh = (
        RefreshToken.objects.select_related("application__organization", "user", "access_token")
        # A refresh token is only ever its own client's business.
        .filter(token_checksum=oauth_claims.token_checksum(raw), revoked__isnull=True, application=client)
        .first()
    )
    if (
        refresh is not None
        and (refresh.user is None or refresh.user.can_sign_in)
        and refresh.application is not None
        and refresh.application.organization.tenant_id == tenant_org.pk
        and refresh.access_token_id is not None
    ):
        expires = refresh.created.timestamp() + refresh.application.refresh_token_lifetime
        authorization = (
            OAuthAuthorization.objects.filter(refresh_family=refresh.token_family)
            .only("impersonation_id", "impersonator_id", "revoked_at")
            .first()
            if refresh.token_family
            else None
        )
        if authorization is None or authorization.revoked_at is not None:
            return no_store(JsonResponse(INACTIVE))
        act: dict[str, Any] = {}
        if authorization.impersonation_id is not None:
            # Under an impersonation: no longer than it lives.
            until = impersonation_live_until(authorization.impersonation_id)
            if until is None:
                return no_store(JsonResponse(INACTIVE))
            expires = min(expires, until.timestamp())
            act = authorization.act_claims
        if expires > timezone.now().timestamp():
            return no_store(
                JsonResponse(
                    {
                        "active": True,
                        "token_type": "refresh_token",
                        "client_id": refresh.application.client_id,
                        "sub": str(refresh.user_id) if refresh.user_id else refresh.application.client_id,
                        "scope": refresh.access_token.scope if refresh.access_token else "",
                        "exp": int(expires),
                        "iss": oauth_claims.issuer_for(tenant_org),
                        **act,
                    }
                )
            )
    return no_store(JsonResponse(INACTIVE))


# --- userinfo ------------------------------------------------------------------------------------


@csrf_exempt
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def userinfo(request: HttpRequest, tenant: str) -> HttpResponse:
    tenant_org = access_tenant(handle=tenant)
    raw = bearer_token(request)
    if not raw:
        # RFC 6750 §3.1: a request without credentials gets the challenge and no error code.
        unauthenticated = HttpResponse(status=401)
        unauthenticated["WWW-Authenticate"] = 'Bearer realm="actas"'
        return no_store(unauthenticated)
    found = live_access_token(tenant_org, raw)
    if found is None:
        return json_error(
            "invalid_token",
            401,
            "The access token is invalid or expired.",
            **{"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    claims, stored = found
    scopes = set(str(claims.get("scope", "")).split())
    user = stored.user
    if "openid" not in scopes or not isinstance(user, User):
        return json_error(
            "insufficient_scope",
            403,
            "The access token does not carry the openid scope.",
            **{"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'},
        )
    answer: dict[str, Any] = {"sub": str(user.pk)}
    answer.update(oauth_claims.user_claims(user=user, scopes=scopes))
    answer.update({k: claims[k] for k in ("org_id", "org_name", "user_org") if k in claims})
    return no_store(JsonResponse(answer))


# --- RP-initiated logout -------------------------------------------------------------------------


def _logout_client(tenant: Organization, client_id: str, hint: dict[str, Any] | None) -> Application | None:
    audiences = hint.get("aud") if hint else None
    if isinstance(audiences, str):
        audiences = [audiences]
    if client_id and audiences and client_id not in audiences:
        return None
    wanted = client_id or (audiences[0] if audiences else "")
    if not wanted or "\x00" in wanted:
        return None
    return (
        Application.objects.select_related("organization")
        .filter(client_id=wanted[:255], organization__tenant_id=tenant.pk)
        .first()
    )


def _post_logout_target(application: Application | None, uri: str, state: str) -> str | None:
    if application is None or not uri:
        return None
    if uri not in (application.post_logout_redirect_uris or "").split():
        return None
    if state:
        uri = f"{uri}{'&' if '?' in uri else '?'}{urlencode({'state': state})}"
    return uri


LOGOUT_PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")


@csrf_exempt  # a relying party's POST is answered with the same GET; the confirmation is checked
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@csp_redirecting_form
def logout(request: HttpRequest, tenant: str) -> HttpResponse:
    """OIDC RP-initiated logout: end the SSO session (and revoke the tokens minted in it),
    then go back to a registered post-logout redirect URI. Asks first unless the application
    skips logout consent and names the current session in a valid ``id_token_hint``."""
    if request.method == "POST" and request.POST.get("confirm") == "yes":
        return _logout_confirmed(request, tenant)
    if request.method == "POST":
        # A cross-site POST carries no SameSite=Lax cookie: continue as the equivalent GET.
        kept = [(k, request.POST[k]) for k in LOGOUT_PARAMS if request.POST.get(k)]
        return SeeOther(f"{request.path}?{urlencode(kept)}")
    return _logout(request, tenant, confirmed=False)


@csrf_protect
def _logout_confirmed(request: HttpRequest, tenant: str) -> HttpResponse:
    return _logout(request, tenant, confirmed=True)


def _logout(request: HttpRequest, tenant: str, *, confirmed: bool) -> HttpResponse:
    tenant_org = access_tenant(handle=tenant)
    params = request.POST if request.method == "POST" else request.GET
    hint = logout_hint(tenant_org, params.get("id_token_hint", "")[:16_384])
    if params.get("id_token_hint") and hint is None:
        return error_page(
            request, title="Sign-out request not valid", message="The ID token hint is not valid."
        )
    client_id = params.get("client_id", "")[:255]
    application = _logout_client(tenant_org, client_id, hint) if (client_id or hint) else None
    if (client_id or hint) and application is None:
        return error_page(request, title="Sign-out request not valid", message="Unknown application.")
    uri = params.get("post_logout_redirect_uri", "")[:2048]
    target = _post_logout_target(application, uri, params.get("state", "")[:512])
    if uri and target is None:
        return error_page(
            request,
            title="Sign-out request not valid",
            message="The address to return to is not registered for this application.",
        )
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    if session is not None and session.tenant_id != tenant_org.pk:
        session = None
    silent = (
        application is not None
        and application.skip_logout_consent
        and hint is not None
        and session is not None
        and hint.get("sid") == session.sid
    )
    if session is not None and not (confirmed or silent):
        return render(
            request,
            "identity/oauth/logout_confirm.html",
            {
                "tenant": tenant_org,
                "application": application,
                "user": session.user,
                "fields": {k: params[k] for k in LOGOUT_PARAMS if params.get(k)},
            },
        )
    if session is not None:
        sso_session_end(actor=session.user, session=session, reason="rp-logout")
        auth.logout(request)
    if target:
        return client_redirect(application, target)
    return render(
        request, "identity/oauth/logged_out.html", {"tenant": tenant_org, "application": application}
    )
