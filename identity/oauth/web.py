"""What the OAuth endpoints of :mod:`identity.oauth.views` and the extensions in front of them
(``impersonation.views``) share: error pages and redirects to a client, the sign-in redirect,
parameter checks, and the authorization request of ``/oauth2/authorize`` itself (the views
module wraps it with the HTTP decorators; an extension answering some response types there
hands every other request to :func:`authorize`). No app imports another app's views.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
)
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.exceptions import FatalClientError, OAuthToolkitError
from oauth2_provider.http import OAuth2ResponseRedirect
from oauth2_provider.models import IDToken
from oauth2_provider.views.mixins import OAuthLibMixin
from oauthlib.common import urlencoded
from oauthlib.oauth2.rfc6749 import errors as oauth2_errors

from identity.access import access_org_in_tenant, access_tenant
from identity.hooks import PrincipalRefused, resolve_principal
from identity.loginflow import flow_satisfied_by_session
from identity.models import Application, SSOSession
from identity.oauth import claims as oauth_claims
from identity.oauth import tokens
from identity.oauth.context import TokenContext
from identity.oauth.params import params_malformed
from identity.oauth.service import server
from identity.selectors.applications import application_of_tenant, login_flow_steps
from identity.selectors.consents import consent_covers
from identity.selectors.permission_map import impersonated_scopes
from identity.selectors.permissions import oauth_user_scopes
from identity.services.sessions import sso_session_is_fresh
from organizations.models import Organization
from organizations.selectors import org_is_usable

PENDING_PREFIX = "actas.oauth.pending:"
# The characters oauthlib accepts in a URI unescaped (its ``urlencoded`` set, as quote() wants it).
_OAUTHLIB_SAFE = "".join(sorted(urlencoded))
MAX_AGE_RE = re.compile(r"[0-9]{1,10}")
MAX_PENDING = 5
OIDC_PARAMS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "claims",
)


class _OAuth(OAuthLibMixin):
    """DOT's bridge from Django requests to the oauthlib server named in settings."""


oauth = _OAuth()


class SeeOther(HttpResponseRedirect):
    status_code = 303


def no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


# How clients authenticate at the token and revocation endpoints (HTTP Basic, or the form).
CLIENT_AUTH_CHALLENGE = 'Basic realm="actas", charset="UTF-8"'


def oauth_response(body: str, status: int, headers: dict[str, str]) -> HttpResponse:
    """The answer of the token or revocation endpoint. A failed client authentication is 401
    with the challenge of the scheme clients authenticate with (RFC 6749 §5.2: Basic), not the
    Bearer challenge oauthlib writes for every 401."""
    response = HttpResponse(content=body or "", status=status, content_type="application/json")
    for key, value in headers.items():
        if key.lower() == "www-authenticate" and status == 401 and value.startswith("Bearer"):
            value = CLIENT_AUTH_CHALLENGE
        response[key] = value
    return no_store(response)


def json_error(error: str, status: int, description: str = "", **headers: str) -> JsonResponse:
    payload = {"error": error}
    if description:
        payload["error_description"] = description
    response = JsonResponse(payload, status=status)
    for key, value in headers.items():
        response[key] = value
    no_store(response)
    return response


def error_page(request: HttpRequest, *, title: str, message: str, status: int = 400) -> HttpResponse:
    return render(request, "identity/oauth/error.html", {"title": title, "message": message}, status=status)


def client_redirect(
    application: Application | None, url: str, *, tenant: Organization | None = None
) -> HttpResponse:
    """A redirect to the client; an authorization response (``tenant`` given) carries the
    issuer in ``iss`` (RFC 9207), so a client talking to several servers knows whose it is."""
    if tenant is not None:
        url = with_issuer(url, oauth_claims.issuer_for(tenant))
    schemes = application.get_allowed_schemes() if application else ["https", "http"]
    return OAuth2ResponseRedirect(url, schemes)


def with_issuer(url: str, issuer: str) -> str:
    """``url`` with ``iss`` in the part that carries the response (the fragment when there is
    one, else the query), any ``iss`` already there removed."""
    parts = urlsplit(url)
    index = 4 if parts.fragment else 3
    pairs = [(k, v) for k, v in parse_qsl(parts[index], keep_blank_values=True) if k != "iss"]
    pairs.append(("iss", issuer))
    return urlunsplit(parts._replace(**{("fragment" if index == 4 else "query"): urlencode(pairs)}))


def error_redirect_url(
    redirect_uri: str, *, error: str, state: str | None, fragment: bool = False, description: str = ""
) -> str:
    params = {"error": error}
    if description:
        params["error_description"] = description
    if state:
        params["state"] = state
    separator = "#" if fragment else ("&" if "?" in redirect_uri else "?")
    return f"{redirect_uri}{separator}{urlencode(params)}"


def _toolkit_error(
    request: HttpRequest, error: OAuthToolkitError, application: Application | None, tenant: Organization
) -> HttpResponse:
    redirect, response = oauth.error_response(error)
    oauthlib_error = error.oauthlib_error
    if redirect and oauthlib_error is not None and oauthlib_error.redirect_uri:
        return client_redirect(application, response["url"], tenant=tenant)
    description = getattr(oauthlib_error, "description", "") or "The request was not valid."
    return error_page(
        request,
        title="This sign-in request cannot be completed",
        message=f"{description} Return to the application and try again.",
        status=getattr(oauthlib_error, "status_code", 400),
    )


def login_url(tenant: Organization, org: Organization, *, client_id: str, next_url: str, reauth: bool) -> str:
    if org.pk == tenant.pk:
        base = reverse("login", kwargs={"tenant": tenant.handle})
    else:
        base = reverse("org-login", kwargs={"tenant": tenant.handle, "org": org.pk})
    params = {"client_id": client_id, "next": next_url}
    if reauth:
        params["reauth"] = "1"
    return f"{base}?{urlencode(params)}"


def url_without(request: HttpRequest, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    encoded = query.urlencode()
    return f"{request.path}?{encoded}" if encoded else request.path


def form_unparseable(request: HttpRequest) -> bool:
    """A body Django cannot parse as a form (broken multipart, too many fields, too large):
    answered as an OAuth ``invalid_request``, not Django's HTML 400."""
    try:
        request.POST  # noqa: B018 (parsed here, where the failure can be answered)
    except (BadRequest, SuspiciousOperation, MultiPartParserError):
        return True
    return False


def _parse_max_age(raw: str | None) -> int | None | bool:
    """None when absent, False when malformed."""
    if raw is None or raw == "":
        return None
    if not MAX_AGE_RE.fullmatch(raw):
        return False
    return int(raw)


def authorize_context(*, tenant: Organization, org: Organization, client_id: str) -> TokenContext:
    """The authorize endpoint's request context: where it was sent and the client it names
    (read with the tenant, once; None when it names none of this tenant's). The validator reads
    both from it in the two oauthlib passes (validate, then create)."""
    return TokenContext(
        tenant=tenant,
        org=org,
        client=application_of_tenant(tenant=tenant, client_id=client_id),
        endpoint="authorize",
    )


def validate_authorization(request: HttpRequest, context: TokenContext) -> tuple[list[str], dict[str, Any]]:
    """oauthlib's validation of an authorization request, its errors raised as DOT's (what
    :func:`_toolkit_error` answers)."""
    uri, method, body, headers = oauthlib_parts(request)
    try:
        found: tuple[list[str], dict[str, Any]] = server().authorization_validate(
            context, uri, method, body, headers
        )
    except oauth2_errors.FatalClientError as error:
        raise FatalClientError(error=error) from error
    except oauth2_errors.OAuth2Error as error:
        raise OAuthToolkitError(error=error) from error
    return found


def issue_authorization(
    request: HttpRequest,
    *,
    context: TokenContext,
    application: Application,
    scopes: list[str],
    credentials: dict[str, Any],
    allow: bool,
) -> HttpResponse:
    # The decided scopes travel in the credentials too: oauthlib falls back to the request's
    # own ``scope`` parameter when the list is empty, and the validator refuses any other set.
    credentials = {**credentials, "scope": " ".join(scopes), "actas_granted": list(scopes)}
    try:
        if not allow:
            raise oauth2_errors.AccessDeniedError(state=credentials.get("state"))
        credentials["user"] = request.user
        uri, _method, _body, _headers = oauthlib_parts(request)
        headers, _answer, _status = server().authorization_create(context, uri, list(scopes), credentials)
    except oauth2_errors.FatalClientError as error:
        return _toolkit_error(
            request,
            FatalClientError(error=error, redirect_uri=credentials["redirect_uri"]),
            application,
            context.tenant,
        )
    except oauth2_errors.OAuth2Error as error:
        return _toolkit_error(
            request,
            OAuthToolkitError(error=error, redirect_uri=credentials["redirect_uri"]),
            application,
            context.tenant,
        )
    return client_redirect(application, headers.get("Location", ""), tenant=context.tenant)


def authorize(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    if request.method == "POST":
        # A cross-site POST carries no SameSite=Lax cookie, so the signed-in browser would look
        # signed out: answer with the equivalent GET, which carries it.
        params = [(k, v) for k, values in request.POST.lists() for v in values if k != "csrfmiddlewaretoken"]
        return SeeOther(f"{request.path}?{urlencode(params)}")
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    if params_malformed(request.GET):
        return error_page(
            request, title="This sign-in request cannot be completed", message="The request is malformed."
        )
    org_param = request.GET.get("orgId")
    if org is None and org_param:
        try:
            child = access_org_in_tenant(tenant=tenant_org, org_id=org_param)
        except Http404:
            return error_page(request, title="Unknown organization", message="No such organization.")
        target = reverse("org-oauth2-authorize", kwargs={"tenant": tenant_org.handle, "org": child.pk})
        query = request.GET.copy()
        query.pop("orgId")
        return HttpResponseRedirect(f"{target}?{query.urlencode()}")

    context = authorize_context(tenant=tenant_org, org=current, client_id=request.GET.get("client_id", ""))
    try:
        scopes, credentials = validate_authorization(request, context)
    except OAuthToolkitError as error:
        return _toolkit_error(request, error, None, tenant_org)
    # Validated: the client is this tenant's and the one the request names.
    application = context.client
    if application is None:  # not reached: validation refuses a client it cannot find
        return error_page(request, title="Unknown application", message="No such application.")
    redirect_uri = credentials["redirect_uri"]
    state = credentials.get("state")
    # Request objects are not supported (discovery says so): OIDC Core §3.1.2.6's own errors.
    for param, refusal in (
        ("request", "request_not_supported"),
        ("request_uri", "request_uri_not_supported"),
    ):
        if param in request.GET:
            return client_redirect(
                application, error_redirect_url(redirect_uri, error=refusal, state=state), tenant=tenant_org
            )
    if not org_is_usable(current):
        return client_redirect(
            application,
            error_redirect_url(redirect_uri, error="access_denied", state=state),
            tenant=tenant_org,
        )

    prompt = set(request.GET.get("prompt", "").split())
    max_age = _parse_max_age(request.GET.get("max_age"))
    if max_age is False:
        return client_redirect(
            application,
            error_redirect_url(redirect_uri, error="invalid_request", state=state),
            tenant=tenant_org,
        )

    session: SSOSession | None = getattr(request, "sso_session", None) or None
    steps = login_flow_steps(application=application, org=current)
    signed_in = (
        session is not None
        and session.organization_id == current.pk
        and flow_satisfied_by_session(session, steps)
    )
    raw_hint = request.GET.get("id_token_hint", "")
    if raw_hint:
        hint = logout_hint(tenant_org, raw_hint)
        if hint is None:
            return client_redirect(
                application,
                error_redirect_url(redirect_uri, error="invalid_request", state=state),
                tenant=tenant_org,
            )
        # OIDC Core §3.1.2.1: a silent request for someone other than who is signed in.
        if "none" in prompt and (session is None or hint.get("sub") != str(session.user_id)):
            return client_redirect(
                application,
                error_redirect_url(redirect_uri, error="login_required", state=state),
                tenant=tenant_org,
            )
    stale = (
        signed_in
        and session is not None
        and not sso_session_is_fresh(session, max_age=max_age if isinstance(max_age, int) else None)
    )
    if not signed_in or "login" in prompt or stale:
        if "none" in prompt:
            # Signed in here, but this application's login flow asks for more (OIDC Core
            # §3.1.2.6: interaction_required); otherwise a sign-in is needed (login_required).
            more = session is not None and session.organization_id == current.pk and not stale
            silent = "interaction_required" if more and "login" not in prompt else "login_required"
            return client_redirect(
                application, error_redirect_url(redirect_uri, error=silent, state=state), tenant=tenant_org
            )
        # Come back without the demand that sent us to sign in, or it would never be met.
        drop = ["prompt"] if "login" in prompt else []
        if max_age == 0:
            drop.append("max_age")
        return HttpResponseRedirect(
            login_url(
                tenant_org,
                current,
                client_id=application.client_id,
                next_url=url_without(request, *drop),
                reauth=signed_in and ("login" in prompt or bool(stale)),
            )
        )
    assert session is not None
    try:
        # Usually the signed-in user; under a bound impersonation, the impersonated user.
        principal = resolve_principal(session=session, application=application, org=current)
    except PrincipalRefused as refusal:
        # The client and redirect URI are valid: the application hears why (OIDC Core §3.1.2.6).
        return client_redirect(
            application,
            error_redirect_url(redirect_uri, error="access_denied", state=state, description=refusal.message),
            tenant=tenant_org,
        )
    user = principal.user
    granted = oauth_user_scopes(user=user, application=application, org=current, requested=scopes)
    if principal.impersonator is not None:
        granted = impersonated_scopes(granted, tenant_id=current.tenant_id, read_only=principal.read_only)
    clean = {k: v for k, v in credentials.items() if k in OIDC_PARAMS and v not in (None, "")}
    decided = {"actas_org": current, "actas_sso_session": session, "actas_principal": principal}
    skip = application.is_system or application.skip_login_consent
    if "consent" not in prompt and (
        skip or consent_covers(user=user, application=application, org=current, scopes=granted)
    ):
        # No consent screen: the application skips it, or the user already allowed all of
        # these scopes here (a remembered consent, also when someone impersonates them).
        return issue_authorization(
            request,
            context=context,
            application=application,
            scopes=granted,
            credentials={**clean, **decided},
            allow=True,
        )
    if principal.impersonator is not None:
        # Consent is the user's own decision: nobody gives it on their behalf. The application
        # hears why (the client and redirect URI are valid).
        return client_redirect(
            application,
            error_redirect_url(
                redirect_uri,
                error="consent_required" if "none" in prompt else "access_denied",
                state=state,
                description=(
                    f"You may not sign in to {application.name} while impersonating: it asks for the "
                    "user's consent, which only the user can give. An administrator can turn on "
                    "Skip login consent for it."
                ),
            ),
            tenant=tenant_org,
        )
    if "none" in prompt:
        return client_redirect(
            application,
            error_redirect_url(redirect_uri, error="consent_required", state=state),
            tenant=tenant_org,
        )

    pending_id = secrets.token_urlsafe(16)
    waiting = sorted(
        (k for k in request.session.keys() if k.startswith(PENDING_PREFIX)),
        key=lambda k: (
            float(request.session[k].get("created", 0)) if isinstance(request.session[k], dict) else 0
        ),
    )
    for key in waiting[: max(0, len(waiting) - MAX_PENDING + 1)]:  # the oldest go
        request.session.pop(key, None)
    request.session[PENDING_PREFIX + pending_id] = {
        "credentials": json.loads(json.dumps(clean, default=str)),
        "scopes": granted,
        "org": str(current.pk),
        "sid": session.sid,
        "created": timezone.now().timestamp(),
    }
    consent_url = (
        reverse("oauth2-consent", kwargs={"tenant": tenant_org.handle})
        if current.pk == tenant_org.pk
        else reverse("org-oauth2-consent", kwargs={"tenant": tenant_org.handle, "org": current.pk})
    )
    return render(
        request,
        "identity/oauth/consent.html",
        {
            "application": application,
            "org": current,
            "tenant": tenant_org,
            "user": user,
            "scopes": granted,
            "pending": pending_id,
            "action": consent_url,
        },
    )


def logout_hint(tenant: Organization, raw: str) -> dict[str, Any] | None:
    """The claims of an ID token of this tenant, expired or not (a logout hint)."""
    if not raw:
        return None
    try:
        claims = tokens.verify(
            raw,
            typ=oauth_claims.ID_TOKEN_TYP,
            issuer=oauth_claims.issuer_for(tenant),
            audience=tokens.ANY_AUDIENCE,
            required=("exp", "iat", "iss", "sub", "aud", "jti"),
            verify_exp=False,
        )
    except tokens.TokenError:
        return None
    # An ID token, not another JWT of ours with the same ``typ`` (a subject token): it was
    # recorded when issued.
    if "may_act" in claims or not IDToken.objects.filter(jti=str(claims["jti"])).exists():
        return None
    return claims


def oauthlib_parts(request: HttpRequest) -> tuple[str, str, str, dict[str, str]]:
    """What oauthlib's request is built from (uri, method, form body, headers), through DOT's
    public ``extract_headers``; the query string escaped to the characters oauthlib accepts,
    so a hostile query is a refused request, never an exception."""
    path, _, query = request.get_full_path().partition("?")
    uri = f"{path}?{quote(query, safe=_OAUTHLIB_SAFE)}" if query else path
    body = urlencode(list(request.POST.items()))
    headers = oauth.get_oauthlib_core().extract_headers(request)
    return uri, request.method or "GET", body, headers
