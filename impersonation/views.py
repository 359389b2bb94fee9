"""The impersonation endpoints: subject tokens at /authorize, End impersonation.

``/oauth2/authorize`` is routed here first: ``response_type=subject_token`` and
``id_token subject_token`` (either word order) are answered by this module; everything else
goes on to identity's authorize view. A subject token is only ever issued after the
impersonator passes actas's own confirmation page (target, reason, read-only; CSRF-protected;
never skipped by skip-consent) with a sign-in at most 15 minutes old.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from django.contrib import auth, messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from oauthlib.common import Request as OAuthlibRequest

from identity.access import access_org_in_tenant, access_tenant
from identity.csp import csp_redirecting_form
from identity.loginflow import flow_satisfied_by_session
from identity.middleware import SSO_SESSION_KEY
from identity.models import Application, SSOSession, User
from identity.oauth import web as oauth_views
from identity.oauth.bearer import bearer_token, live_access_token
from identity.oauth.claims import oauth_id_token_issue
from identity.oauth.validator import ActasOAuth2Validator
from identity.selectors.applications import login_flow_steps
from identity.services.sessions import sso_session_is_fresh
from impersonation import policy
from impersonation.models import ImpersonationSession
from impersonation.reasons import MAX_REASON, impersonation_reason_check
from impersonation.selectors import live_session_for
from impersonation.services import (
    impersonation_check,
    impersonation_end,
    impersonation_end_by_impersonator,
)
from impersonation.subject_tokens import subject_token_issue
from organizations.models import Organization
from organizations.selectors import org_effective_settings

SUBJECT_TOKEN = frozenset({"subject_token"})
ID_AND_SUBJECT_TOKEN = frozenset({"id_token", "subject_token"})
PENDING_PREFIX = "actas.impersonation.pending:"
# The impersonator's sign-in must be this recent to start an impersonation.
FRESH_SIGN_IN = 15 * 60
CONFIRM_MAX_AGE = 600
REFUSED_TITLE = "Impersonation is not possible"


def _response_type(request: HttpRequest) -> frozenset[str] | None:
    words = frozenset(request.GET.get("response_type", "").split())
    return words if words in (SUBJECT_TOKEN, ID_AND_SUBJECT_TOKEN) else None


@csrf_exempt  # as identity's: a POST only gets a redirect to the same GET
@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@csp_redirecting_form  # the confirmation page's form ends in a redirect to the client
def authorize(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    if request.method == "GET" and _response_type(request) and not request.GET.get("orgId"):
        return _subject_token_authorize(request, tenant, org)
    return oauth_views.authorize(request, tenant, org)


class _Target:
    """Where an answer goes: the client's registered redirect URI, in the query or (with an
    ID token) the fragment."""

    def __init__(
        self, application: Application, redirect_uri: str, state: str, fragment: bool, tenant: Organization
    ) -> None:
        self.application, self.redirect_uri, self.state, self.fragment = (
            application,
            redirect_uri,
            state,
            fragment,
        )
        self.tenant = tenant

    def redirect(self, url: str) -> HttpResponse:
        return oauth_views.client_redirect(self.application, url, tenant=self.tenant)

    def error(self, error: str) -> HttpResponse:
        url = oauth_views.error_redirect_url(
            self.redirect_uri, error=error, state=self.state, fragment=self.fragment
        )
        return self.redirect(url)

    def success(self, params: dict[str, str]) -> HttpResponse:
        if self.state:
            params["state"] = self.state
        separator = "#" if self.fragment else ("&" if "?" in self.redirect_uri else "?")
        return self.redirect(f"{self.redirect_uri}{separator}{urlencode(params)}")


def _client(request: HttpRequest, client_id: str, redirect_uri: str) -> Application | None:
    """The client, found the way the token endpoint finds it (this tenant, available in this
    organization), with an exactly registered redirect URI."""
    validator = ActasOAuth2Validator()
    oauthlib_request = OAuthlibRequest(request.get_full_path())
    if not validator.validate_client_id(client_id, oauthlib_request):
        return None
    if not validator.validate_redirect_uri(client_id, redirect_uri, oauthlib_request):
        return None
    client = oauthlib_request.client
    return client if isinstance(client, Application) else None


def _subject_token_authorize(request: HttpRequest, tenant: str, org: uuid.UUID | None) -> HttpResponse:
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    if oauth_views.params_malformed(request.GET):
        return oauth_views.error_page(request, title=REFUSED_TITLE, message="The request is malformed.")
    params = request.GET
    response_type = _response_type(request)
    assert response_type is not None
    application = _client(request, params.get("client_id", ""), params.get("redirect_uri", ""))
    if application is None:
        return oauth_views.error_page(
            request, title=REFUSED_TITLE, message="Unknown application or unregistered redirect URI."
        )
    target = _Target(
        application, params["redirect_uri"], params.get("state", ""), "id_token" in response_type, tenant_org
    )
    if not (
        application.subject_token_enabled
        and application.allows_grant_type(Application.GRANT_TOKEN_EXCHANGE_TYPE)
    ):
        # The one refusal an administrator fixes with a switch: the description names it.
        url = oauth_views.error_redirect_url(
            target.redirect_uri, error="unauthorized_client", state=target.state, fragment=target.fragment
        )
        description = (
            f"Impersonation is turned off for {application.name}. Turn it on in the Console: "
            f"Applications → {application.name} → Protocol → Impersonation."
        )
        return target.redirect(f"{url}&{urlencode({'error_description': description})}")
    scopes = params.get("scope", "").replace(",", " ").split()
    if policy.impersonate_scope_for(current) not in scopes:
        return target.error("invalid_scope")
    if not params.get("requested_subject"):
        return target.error("invalid_request")
    if "id_token" in response_type and not params.get("nonce"):
        return target.error("invalid_request")

    prompt = set(params.get("prompt", "").split())
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    steps = login_flow_steps(application=application, org=current)
    signed_in = (
        session is not None
        and session.organization_id == current.pk
        and flow_satisfied_by_session(session, steps)
    )
    fresh = signed_in and session is not None and sso_session_is_fresh(session, max_age=FRESH_SIGN_IN)
    if not fresh or "login" in prompt:
        if "none" in prompt:
            return target.error("login_required")
        return HttpResponseRedirect(
            oauth_views.login_url(
                tenant_org,
                current,
                client_id=application.client_id,
                next_url=oauth_views.url_without(request, "prompt"),
                reauth=signed_in,
            )
        )
    assert session is not None
    try:
        attempt = impersonation_check(
            actor=session.user,
            subject_id=params["requested_subject"],
            org=current,
            application=application,
            sso_session=session,
            requested_scopes=scopes,
            read_only=False,
            stage="authorize",
        )
    except policy.Refused:
        return target.error("access_denied")
    assert attempt.subject is not None
    pending_id = secrets.token_urlsafe(16)
    for key in [k for k in request.session.keys() if k.startswith(PENDING_PREFIX)]:
        request.session.pop(key, None)
    request.session[PENDING_PREFIX + pending_id] = {
        "client_id": application.client_id,
        "redirect_uri": target.redirect_uri,
        "state": target.state,
        "fragment": target.fragment,
        "id_token": "id_token" in response_type,
        "nonce": params.get("nonce", ""),
        "scopes": scopes,
        "subject": str(attempt.subject.pk),
        "org": str(current.pk),
        "sid": session.sid,
        "code_challenge": params.get("code_challenge", ""),
        "created": timezone.now().timestamp(),
    }
    return _confirmation(
        request,
        tenant=tenant_org,
        org=current,
        application=application,
        subject=attempt.subject,
        pending=pending_id,
        reason=params.get("impersonation_reason", ""),
        read_only=False,
        error="",
    )


def _confirm_url(tenant: Organization, org: Organization) -> str:
    if org.pk == tenant.pk:
        return reverse("impersonation-confirm", kwargs={"tenant": tenant.handle})
    return reverse("org-impersonation-confirm", kwargs={"tenant": tenant.handle, "org": org.pk})


def _confirmation(
    request: HttpRequest,
    *,
    tenant: Organization,
    org: Organization,
    application: Application,
    subject: User,
    pending: str,
    reason: str,
    read_only: bool,
    error: str,
) -> HttpResponse:
    settings = org_effective_settings(org)
    return render(
        request,
        "impersonation/confirm.html",
        {
            "tenant": tenant,
            "org": org,
            "application": application,
            "subject": subject,
            "pending": pending,
            "reason": reason[:MAX_REASON],
            "read_only": read_only,
            "reason_required": settings.impersonation_reason_required,
            "max_minutes": settings.impersonation_max_minutes,
            "action": _confirm_url(tenant, org),
            "error": error,
        },
        status=400 if error else 200,
    )


@never_cache
@require_POST
@csp_redirecting_form
def confirm(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    """The impersonator's answer to the confirmation page (a CSRF-protected POST)."""
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    pending_id = (request.POST.get("pending") or "")[:64]
    key = PENDING_PREFIX + pending_id
    pending: Any = request.session.get(key) if pending_id else None
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    if (
        not isinstance(pending, dict)
        or session is None
        or pending.get("sid") != session.sid
        or pending.get("org") != str(current.pk)
        or timezone.now().timestamp() - float(pending.get("created", 0)) > CONFIRM_MAX_AGE
    ):
        request.session.pop(key, None)
        return oauth_views.error_page(
            request, title="This request has expired", message="Return to the application and start again."
        )
    application = (
        Application.objects.select_related("organization").filter(client_id=pending["client_id"]).first()
    )
    subject = User.objects.filter(pk=pending["subject"]).first()
    if application is None or subject is None:
        request.session.pop(key, None)
        return oauth_views.error_page(request, title=REFUSED_TITLE, message="The request is no longer valid.")
    target = _Target(application, pending["redirect_uri"], pending["state"], pending["fragment"], tenant_org)
    if request.POST.get("decision") != "impersonate":
        request.session.pop(key, None)
        return target.error("access_denied")
    reason, problem = impersonation_reason_check(org=current, reason=request.POST.get("reason", ""))
    read_only = request.POST.get("read_only") == "on"
    if problem:
        return _confirmation(
            request,
            tenant=tenant_org,
            org=current,
            application=application,
            subject=subject,
            pending=pending_id,
            reason=reason,
            read_only=read_only,
            error=problem,
        )
    request.session.pop(key, None)
    if not sso_session_is_fresh(session, max_age=FRESH_SIGN_IN):
        return target.error("login_required")
    try:
        attempt = impersonation_check(
            actor=session.user,
            subject_id=pending["subject"],
            org=current,
            application=application,
            sso_session=session,
            requested_scopes=pending["scopes"],
            read_only=read_only,
            stage="confirm",
        )
    except policy.Refused:
        return target.error("access_denied")
    answer = {
        "subject_token": subject_token_issue(
            actor=session.user,
            attempt=attempt,
            sso_session=session,
            reason=reason,
            code_challenge=pending.get("code_challenge", ""),
        )
    }
    if pending["id_token"]:
        answer["id_token"], _stored = oauth_id_token_issue(
            tenant=tenant_org,
            org=current,
            client=application,
            user=session.user,
            scopes=["openid"],
            session=session,
            base={"nonce": pending["nonce"]},
        )
    return target.success(answer)


# --- End impersonation ----------------------------------------------------------------------

#: Where the impersonator started from (the Console page of the user), kept in the browser
#: session with the impersonation it belongs to; End returns there.
RETURN_KEY = "actas.impersonation.return"
MAX_RETURN_PATH = 2048


class SeeOther(HttpResponseRedirect):
    status_code = 303


def _safe_path(path: object) -> bool:
    """A path on this site only: no scheme, no host, no protocol-relative ``//``, no
    backslash, no control characters."""
    return (
        isinstance(path, str)
        and 0 < len(path) <= MAX_RETURN_PATH
        and path.startswith("/")
        and not path.startswith("//")
        and "\\" not in path
        and not any(ord(ch) < 32 or ord(ch) == 127 for ch in path)
        and url_has_allowed_host_and_scheme(path, allowed_hosts=None, require_https=False)
    )


def remember_return(request: HttpRequest, *, impersonation: ImpersonationSession, path: str) -> None:
    """Remember ``path`` (a same-site path, else nothing) as where End returns for ``impersonation``."""
    if _safe_path(path):
        request.session[RETURN_KEY] = {"impersonation": str(impersonation.pk), "path": path}


def _take_return(request: HttpRequest, impersonation: ImpersonationSession) -> str:
    stored = request.session.pop(RETURN_KEY, None)
    if isinstance(stored, dict) and stored.get("impersonation") == str(impersonation.pk):
        path = stored.get("path")
        if _safe_path(path):
            assert isinstance(path, str)
            return path
    return ""


def ended_message(ended: ImpersonationSession) -> str:
    return (
        f"You are no longer impersonating {ended.subject.display_name} ({ended.subject.username}). "
        "Every token issued during the impersonation is revoked; you are still signed in as yourself."
    )


def end_in_this_browser(
    request: HttpRequest, current: ImpersonationSession
) -> tuple[ImpersonationSession, str | None]:
    """The impersonator ends ``current`` from the browser it is bound to: every token of the
    impersonation is revoked and its sign-in ends, and this browser carries on with a new
    sign-in of the impersonator's own (a new session key and SSO session id, so the old
    cookie resumes nothing). Returns the ended impersonation and the path to go back to
    ("" when none was kept), or None when the browser is signed out instead (its own sign-in's
    time was up)."""
    back = _take_return(request, current)
    ended, continued = impersonation_end_by_impersonator(actor=current.impersonator, session=current)
    if continued is None:
        auth.logout(request)  # a new, empty browser session (a new key)
        return ended, None
    request.session.cycle_key()
    request.session[SSO_SESSION_KEY] = continued.sid
    for key in [k for k in request.session.keys() if k.startswith(PENDING_PREFIX)]:
        request.session.pop(key, None)
    request._actas_auth = (continued.user, continued)  # type: ignore[attr-defined]
    return ended, back


def _bearer_session(request: HttpRequest, tenant: Organization) -> ImpersonationSession | None:
    """The live impersonation an access token was minted under, if the token is valid."""
    found = live_access_token(tenant, bearer_token(request))
    if found is None:
        return None
    claims, _stored = found
    try:
        pk = uuid.UUID(str(claims.get("impersonation_id", "")))
    except ValueError:
        return None
    return (
        ImpersonationSession.objects.select_related(
            "organization", "impersonator", "sso_session", "application"
        )
        .filter(pk=pk, tenant=tenant, ended_at__isnull=True)
        .first()
    )


@never_cache
@require_POST
def end(request: HttpRequest, tenant: str) -> HttpResponse:
    """End impersonation from the bound browser (the banner's button: a CSRF-checked POST)."""
    tenant_org = access_tenant(handle=tenant)
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    current = (
        live_session_for(session) if session is not None and session.tenant_id == tenant_org.pk else None
    )
    if current is None:
        return oauth_views.error_page(
            request, title="Nothing to end", message="This browser is not impersonating anyone.", status=404
        )
    ended, back = end_in_this_browser(request, current)
    if back is None:
        return render(
            request,
            "impersonation/ended.html",
            {"tenant": tenant_org, "impersonation": ended, "signed_in": False},
        )
    if back:
        messages.success(request, ended_message(ended))
        return SeeOther(back)
    return render(
        request,
        "impersonation/ended.html",
        {"tenant": tenant_org, "impersonation": ended, "signed_in": True},
    )


@csrf_exempt
@login_not_required
@never_cache
@require_POST
def end_api(request: HttpRequest, tenant: str) -> HttpResponse:
    """End impersonation from an application, with one of the session's access tokens."""
    tenant_org = access_tenant(handle=tenant)
    current = _bearer_session(request, tenant_org)
    if current is None:
        response = JsonResponse({"error": "invalid_token"}, status=401)
        response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    impersonation_end(
        actor=current.impersonator, session=current, reason=ImpersonationSession.EndReason.ENDED
    )
    return JsonResponse({"ended": True, "impersonation_id": str(current.pk)})
