"""Sign-in and sign-out.

The sign-in page runs the Console's login flow for the organization in the URL. Only the
``BasicAuthenticator`` exists yet; the multi-step login-flow engine generalises this page.
"""

from __future__ import annotations

import uuid

from django.contrib import auth, messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import access_org_in_tenant, access_tenant
from identity.authenticators import AUTHENTICATORS, GENERIC_FAILURE
from identity.console.shell import console_reverse
from identity.csp import csp_redirecting_form
from identity.loginflow import (
    flow_advance,
    flow_discard,
    flow_finish,
    flow_is_complete,
    flow_load,
    flow_save,
    flow_submit,
)
from identity.models import Application, SSOSession
from identity.ratelimit import signin_rate_limited
from identity.selectors.applications import (
    application_available_in,
    login_flow_steps,
    tenant_system_application,
)
from identity.services.sessions import sso_session_end
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


def _resolve_application(request: HttpRequest, tenant: Organization, org: Organization) -> Application | None:
    """The application signing in: ``?client_id=`` when given, else the Console."""
    client_id = (request.POST.get("client_id") or request.GET.get("client_id") or "")[:255]
    if "\x00" in client_id:
        return None
    if client_id:
        app = Application.objects.select_related("organization").filter(client_id=client_id).first()
        if app is None or not application_available_in(application=app, org=org):
            return None
        return app
    return tenant_system_application(tenant=tenant, key=Application.SystemKey.CONSOLE)


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
@signin_rate_limited
@csp_redirecting_form
def login_view(request: HttpRequest, tenant: str, org: uuid.UUID | None = None) -> HttpResponse:
    """Run the application's login flow for this organization, step by step."""
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    next_url = _safe_next(request, tenant_org, current)
    app = _resolve_application(request, tenant_org, current)
    context: dict[str, object] = {"tenant": tenant_org, "org": current, "next": next_url, "app": app}
    if not org_is_usable(current):
        context["unavailable"] = "This organization is disabled."
    elif app is None:
        context["unavailable"] = "This application is not available in this organization."
    if "unavailable" in context:
        return render(
            request, "identity/login.html", context, status=400 if request.method == "POST" else 200
        )
    assert app is not None

    steps = login_flow_steps(application=app, org=current)
    reauth = request.GET.get("reauth") == "1"
    flow = flow_load(
        request,
        org=current,
        app=app,
        steps=steps,
        next_url=next_url,
        restart="restart" in request.GET or (reauth and request.method == "GET"),
        fresh=reauth,
    )
    flow_advance(flow, steps)
    status = 200
    if request.method == "POST" and not flow_is_complete(flow, steps):
        offered = steps[flow.step]
        # A step with a single option needs no choice (plain username/password forms work).
        name = request.POST.get("authenticator") or (offered[0] if len(offered) == 1 else "")
        result = flow_submit(request, flow, steps, org=current, name=name, data=request.POST)
        context["error"], context["notice"] = result.error, result.notice
        status = 400 if result.error else 200
    if flow_is_complete(flow, steps):
        flow_discard(request, flow)
        if flow_finish(request, flow, org=current) is not None:
            return HttpResponseRedirect(flow.next_url)
        context["error"] = GENERIC_FAILURE
        flow = flow_load(request, org=current, app=app, steps=steps, next_url=next_url, restart=True)
        status = 400
    flow_save(request, flow)
    step = steps[flow.step]
    context.update(
        {
            "step_number": flow.step + 1,
            "step_count": len(steps),
            "identifier": flow.progress.identifier if flow.step > 0 else "",
            "alternatives": [
                {
                    "name": name,
                    "label": AUTHENTICATORS[name].label,
                    "form": AUTHENTICATORS[name].form(flow.progress),
                    "code_sent": name == "email-otp" and bool(flow.progress.otp_id),
                }
                for name in step
            ],
        }
    )
    return render(request, "identity/login.html", context, status=status)


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
