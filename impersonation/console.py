"""Console pages owned by impersonation: Impersonate User, and Impersonations.

"Impersonate User" runs the same service as the token exchange (same checks, session, audit)
behind actas's confirmation page; the impersonator's browser is then bound to the
impersonation and My Account opens as the user in a new tab.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import access_console_user
from identity.console_shell import Console, console_page
from identity.models import Application, SSOSession, User
from identity.services.sessions import sso_session_is_fresh
from impersonation import policy, selectors
from impersonation.models import ImpersonationSession
from impersonation.services import (
    MAX_REASON,
    impersonation_begin,
    impersonation_end,
    impersonation_reason_check,
    impersonation_refused,
    live_session_for,
)
from organizations.selectors import org_effective_settings

FRESH_SIGN_IN = 15 * 60
VIEW = "internal_audit_view"
END = "internal_user_mgt_update"

# What the Console says when the button is disabled (the audit trail keeps the detail).
DISABLED = {
    "no-permission": "You need the Impersonator role (audience My Account) to impersonate users.",
    "impersonator-inactive": "Your account or this organization is not active.",
    "subject-disabled": "The account is disabled: enable it to impersonate the user.",
    "subject-locked": "The account is locked: unlock it to impersonate the user.",
    "subject-protected": "The account is protected: nobody can impersonate it.",
    "dominance": "This user holds permissions that you do not have.",
    "chained": "You are impersonating someone already. End that impersonation first.",
    "myaccount": (
        "My Account is not enabled for this organization: an administrator of the organization that "
        "owns it shares it from Applications → My Account → Shared Access."
    ),
    "login-flow": "My Account's login flow asks for steps that the Console's login flow does not have.",
}


@dataclass(frozen=True)
class ImpersonateAction:
    """Whether the Impersonate User action shows, and if it is disabled, why."""

    shown: bool
    disabled_reason: str = ""


def _myaccount(console: Console) -> Application | None:
    return selectors.myaccount_for(org=console.org)


def impersonate_action(
    *, request: HttpRequest, console: Console, member: User, policy_check: bool = True
) -> ImpersonateAction:
    """Hidden for yourself and for users managed by a parent organization (shared in);
    otherwise shown, disabled with the reason the policy (or a prerequisite) gives.
    ``policy_check=False`` looks only at the prerequisites (the caller runs the policy)."""
    if member.pk == console.user.pk or member.organization_id != console.org.pk:
        return ImpersonateAction(shown=False)
    myaccount = _myaccount(console)
    if myaccount is None:
        return ImpersonateAction(shown=True, disabled_reason=DISABLED["myaccount"])
    if not selectors.login_flows_compatible(org=console.org, myaccount=myaccount):
        return ImpersonateAction(shown=True, disabled_reason=DISABLED["login-flow"])
    if not policy_check:
        return ImpersonateAction(shown=True)
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    try:
        policy.evaluate(
            policy.Attempt(
                impersonator=console.user,
                subject_id=str(member.pk),
                org=console.org,
                application=myaccount,
                requested_scopes=(),
                chained=session is not None and live_session_for(session) is not None,
            )
        )
    except policy.Refused as refusal:
        return ImpersonateAction(shown=True, disabled_reason=DISABLED.get(refusal.code, "Not allowed."))
    return ImpersonateAction(shown=True)


def _myaccount_url(console: Console) -> str:
    """My Account's home (reversed by name: no import of the myaccount app)."""
    if console.is_root:
        return reverse("myaccount:profile", kwargs={"tenant": console.tenant.handle})
    return reverse("org-myaccount:profile", kwargs={"tenant": console.tenant.handle, "org": console.org.pk})


@console_page(scope="internal_user_mgt_view")
@require_http_methods(["GET", "POST"])
def impersonate_user(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """The confirmation page (GET) and its answer (POST, CSRF-protected): who, why, read-only."""
    member = access_console_user(org=console.org, user_id=user_id)
    # The page shows why it is not possible; the POST runs the chain once, in the service.
    action = impersonate_action(
        request=request, console=console, member=member, policy_check=request.method == "GET"
    )
    if not action.shown:
        raise Http404("No such user.")
    if action.disabled_reason:
        raise PermissionDenied(action.disabled_reason)
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    if session is None:
        raise PermissionDenied("Sign in again to impersonate.")
    if not sso_session_is_fresh(session, max_age=FRESH_SIGN_IN):
        login = reverse("login", kwargs={"tenant": console.tenant.handle})
        if not console.is_root:
            login = reverse("org-login", kwargs={"tenant": console.tenant.handle, "org": console.org.pk})
        messages.info(request, "Sign in again to start an impersonation.")
        return HttpResponseRedirect(f"{login}?reauth=1&next={request.path}")
    settings = org_effective_settings(console.org)
    context = {
        "console": console,
        "member": member,
        "reason": request.POST.get("reason", "")[: MAX_REASON + 1] if request.method == "POST" else "",
        "read_only": request.POST.get("read_only") == "on",
        "reason_required": settings.impersonation_reason_required,
        "max_minutes": settings.impersonation_max_minutes,
        "error": "",
    }
    if request.method == "GET":
        return render(request, "impersonation/console/confirm.html", context)
    reason, context["error"] = impersonation_reason_check(
        org=console.org, reason=request.POST.get("reason", "")
    )
    if context["error"]:
        return render(request, "impersonation/console/confirm.html", context, status=400)
    myaccount = _myaccount(console)
    assert myaccount is not None
    try:
        impersonation_begin(
            actor=console.user,
            subject_id=str(member.pk),
            org=console.org,
            application=myaccount,
            sso_session=session,
            reason=reason,
            read_only=context["read_only"] is True,
            channel=ImpersonationSession.Channel.CONSOLE,
        )
    except policy.Refused as refusal:
        impersonation_refused(
            actor=console.user,
            org=console.org,
            application=myaccount,
            refusal=refusal,
            subject_id=str(member.pk),
            stage="console",
        )
        context["error"] = DISABLED.get(refusal.code, "The impersonation was refused.")
        return render(request, "impersonation/console/confirm.html", context, status=403)
    # A new session key for the browser now acting on someone's behalf.
    request.session.cycle_key()
    return HttpResponseRedirect(_myaccount_url(console))


@console_page(scope=VIEW)
def impersonation_list(request: HttpRequest, console: Console) -> HttpResponse:
    """Active impersonations of this organization and its subtree, and past ones."""
    before = request.GET.get("before") or None
    page = selectors.past_impersonations(org=console.org, before=before)
    return render(
        request,
        "impersonation/console/list.html",
        {"console": console, "active": selectors.active_impersonations(org=console.org), "page": page},
    )


@console_page(scope=VIEW)
def impersonation_detail(request: HttpRequest, console: Console, impersonation_id: str) -> HttpResponse:
    impersonation = selectors.impersonation_in_subtree(org=console.org, impersonation_id=impersonation_id)
    if impersonation is None:
        raise Http404("No such impersonation.")
    return render(
        request,
        "impersonation/console/detail.html",
        {
            "console": console,
            "impersonation": impersonation,
            "events": selectors.impersonation_trail(impersonation),
            "applications": selectors.impersonation_applications(impersonation),
        },
    )


@console_page(scope=END)
@require_POST
def impersonation_force_end(request: HttpRequest, console: Console, impersonation_id: str) -> HttpResponse:
    impersonation = selectors.impersonation_in_subtree(org=console.org, impersonation_id=impersonation_id)
    if impersonation is None:
        raise Http404("No such impersonation.")
    if impersonation.ended_at is None:
        impersonation_end(
            actor=console.user, session=impersonation, reason=ImpersonationSession.EndReason.FORCE_ENDED
        )
        messages.success(
            request,
            f"Ended the impersonation of {impersonation.subject.username}.",
        )
    return HttpResponseRedirect(console.url("impersonations"))
