"""Sign-in and sign-out.

The sign-in page runs the Console's login flow for the organization in the URL. Only the
``BasicAuthenticator`` exists yet; the multi-step login-flow engine generalises this page.
"""

from __future__ import annotations

import uuid

from django.contrib import auth, messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from identity import context, tokens
from identity.access import access_org_in_tenant, access_tenant
from identity.authenticators import BasicAuthenticator
from identity.console_shell import console_reverse
from identity.forms import LoginForm
from identity.middleware import SSO_SESSION_KEY
from identity.models import Application, SSOSession
from identity.selectors import login_flow_steps, tenant_system_application
from identity.services.sessions import sso_session_end, sso_session_start
from organizations.models import Organization
from organizations.selectors import org_is_usable


def _safe_next(request: HttpRequest, tenant: Organization, org: Organization) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if (
        candidate
        and candidate.startswith(f"/t/{tenant.handle}/")
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    ):
        return candidate
    return console_reverse("home", tenant=tenant, org=org)


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    next_url = _safe_next(request, tenant_org, current)
    console = tenant_system_application(tenant=tenant_org, key=Application.SystemKey.CONSOLE)
    unavailable = ""
    if not org_is_usable(current):
        unavailable = "This organization is disabled."
    elif console is None:
        unavailable = "This tenant has no Console application."
    else:
        steps = login_flow_steps(application=console, org=current)
        if steps != [[BasicAuthenticator.name]]:
            unavailable = (
                "This organization's login flow needs a sign-in method this page does not offer yet."
            )

    user = request.user
    if (
        not unavailable
        and request.method == "GET"
        and user.is_authenticated
        and getattr(user, "organization_id", None) == current.pk
    ):
        return HttpResponseRedirect(next_url)

    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and not unavailable and form.is_valid():
        outcome = BasicAuthenticator().authenticate(
            request,
            org=current,
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
        )
        if outcome.user is not None:
            previous: SSOSession | None = getattr(request, "sso_session", None)
            if previous:
                sso_session_end(actor=previous.user, session=previous, reason="replaced")
            auth.login(request, outcome.user, backend="identity.backends.TenantUserBackend")
            session = sso_session_start(
                user=outcome.user,
                org=current,
                amr=[BasicAuthenticator.amr],
                ip=context.current().ip,
                user_agent=request.headers.get("User-Agent", ""),
            )
            request.session[SSO_SESSION_KEY] = session.sid
            return HttpResponseRedirect(next_url)
        form.add_error(None, outcome.error)
        status = 400
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "identity/login.html",
        {"form": form, "tenant": tenant_org, "org": current, "next": next_url, "unavailable": unavailable},
        status=status,
    )


@require_POST
def logout_view(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    session: SSOSession | None = getattr(request, "sso_session", None)
    if session:
        sso_session_end(actor=session.user, session=session, reason="signed-out")
    auth.logout(request)
    messages.info(request, "You have signed out.")
    if current.pk == tenant_org.pk:
        return HttpResponseRedirect(reverse("login", kwargs={"tenant": tenant_org.handle}))
    return HttpResponseRedirect(reverse("org-login", kwargs={"tenant": tenant_org.handle, "org": current.pk}))


@login_not_required
@require_GET
def jwks_view(request: HttpRequest, tenant: str) -> JsonResponse:
    """The tenant's public signing keys (RFC 7517), cacheable, readable from any origin."""
    access_tenant(handle=tenant)
    response = JsonResponse(tokens.jwks())
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response
