"""Console pages owned by impersonation: Impersonate User, and Impersonations.

"Impersonate User" runs the same service as the token exchange (same checks, session, audit)
behind actas's confirmation page; the impersonator's browser is then bound to the
impersonation, the user's Console page says it started and links to My Account as the user
(a new tab). End (the banner, or Impersonations in the bound browser) comes back to that page,
still signed in as the administrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from identity.access import access_console_user
from identity.console.shell import Console, console_page
from identity.models import Application, SSOSession, User
from identity.selectors.permission_map import dominance_gaps
from identity.selectors.users import user_is_member
from identity.services.sessions import sso_session_is_fresh
from impersonation import policy, selectors
from impersonation.models import ImpersonationSession
from impersonation.reasons import MAX_REASON, impersonation_reason_check
from impersonation.selectors import live_session_for
from impersonation.services import (
    impersonation_begin,
    impersonation_end,
    impersonation_refused,
)
from impersonation.views import SeeOther, end_in_this_browser, ended_message, remember_return
from organizations.models import Organization
from organizations.selectors import org_effective_settings

FRESH_SIGN_IN = 15 * 60
VIEW = "internal_audit_view"
END = "internal_user_mgt_update"
# Refusals that mean "this browser is impersonating already" (answered 409, not 403).
ALREADY = frozenset({"chained", "already-impersonating"})


@dataclass(frozen=True)
class Refusal:
    """Why Impersonate User is not possible, in the words the Console shows: the rule, and
    where to go about it (``help_url``, ``help_label``; empty when nowhere)."""

    code: str
    text: str
    help_url: str = ""
    help_label: str = ""


def _org_names(ids: object) -> dict[object, str]:
    return dict(Organization.objects.filter(pk__in=list(ids)).values_list("pk", "name"))  # type: ignore[call-overload]


def _org_console_sign_in(console: Console) -> str:
    """The sign-in of the Console's organization, going on to its Console."""
    if console.is_root:
        login = reverse("login", kwargs={"tenant": console.tenant.handle})
    else:
        login = reverse("org-login", kwargs={"tenant": console.tenant.handle, "org": console.org.pk})
    return f"{login}?{urlencode({'next': console.url('home')})}"


def refusal_for(
    code: str, *, console: Console, member: User, current: ImpersonationSession | None = None
) -> Refusal:
    """The Console's words for a refused impersonation of ``member`` (the audit trail keeps
    the policy's own detail). Each names the rule and, where something can be done, where."""
    org, who = console.org.name, member.username
    if code == "no-permission":
        if user_is_member(user=console.user, org=console.org):
            return Refusal(
                code,
                f"You need the Impersonator role (audience My Account) in {org} to impersonate its "
                f"users. An administrator of {org} can assign it to you under Roles → Impersonator.",
            )
        home = console.user.organization.name
        return Refusal(
            code,
            f"Only members of {org} who hold its Impersonator role can impersonate its users. "
            f"You are signed in from {home} and are not a member of {org}, so that role cannot be "
            f"given to you here. Impersonate {org}'s users from {org}'s own Console, signed in with "
            f"an account of {org} that has the role.",
            help_url=_org_console_sign_in(console),
            help_label=f"Sign in to {org}'s Console",
        )
    if code in ("impersonator-inactive", "org-inactive"):
        if not console.user.can_sign_in:
            return Refusal(code, "Your account is disabled or locked, so you cannot impersonate anyone.")
        return Refusal(
            code,
            f"{org} or an organization above it is disabled, and nobody in a disabled organization "
            "can be impersonated. Enable it first.",
        )
    if code == "subject-disabled":
        return Refusal(
            code,
            f"{who}'s account is disabled, and disabled accounts cannot be impersonated. "
            f"Enable it first if you need to act as {who}.",
        )
    if code == "subject-locked":
        return Refusal(
            code,
            f"{who}'s account is locked, and locked accounts cannot be impersonated. "
            f"Unlock it first if you need to act as {who}.",
        )
    if code == "subject-protected":
        return Refusal(
            code, f"{who}'s account is protected: protected accounts are never impersonated, by anyone."
        )
    if code == "dominance":
        gaps = dominance_gaps(impersonator=console.user, subject=member)
        names = _org_names(gaps.keys())
        held = "; ".join(
            f"{', '.join(sorted(scopes))} in {names.get(org_id, 'another organization')}"
            for org_id, scopes in sorted(gaps.items(), key=lambda item: names.get(item[0], ""))
        )
        return Refusal(
            code,
            f"You can impersonate only people whose permissions you hold yourself, and {who} holds "
            f"some you do not" + (f": {held}." if held else "."),
        )
    if code in ALREADY:
        whom = f"{current.subject.username}" if current is not None else "someone"
        return Refusal(
            code,
            f"This browser is already impersonating {whom}, and it can impersonate one person at a "
            "time. End that impersonation first (End impersonation, in the banner at the top).",
        )
    if code == "myaccount":
        return Refusal(
            code,
            f"Impersonating from the Console opens My Account, and My Account is not enabled for {org}. "
            f"An administrator of {console.tenant.name} can share it with {org} under "
            "Applications → My Account → Shared Access.",
        )
    if code == "login-flow":
        return Refusal(
            code,
            f"Impersonating from the Console needs My Account's login flow in {org} to ask for nothing "
            "that the Console's login flow does not, and here it asks for more. Make them match under "
            "Console Settings → Login Flow or Applications → My Account → Login Flow.",
        )
    if code == "sso-session-ended":
        return Refusal(code, "Your sign-in has ended. Sign in again to impersonate.")
    if code == "reason-required":
        return Refusal(code, f"{org} requires a reason for every impersonation.")
    return Refusal(code, f"actas does not allow you to impersonate {who}.")


@dataclass(frozen=True)
class ImpersonateAction:
    """Whether the Impersonate User action shows and, if it is disabled, why; ``live``: this
    browser is impersonating this very user now (the page says so, with a link to My Account
    as them); ``notifies``: the user is emailed when an impersonation starts."""

    shown: bool
    refusal: Refusal | None = None
    live: ImpersonationSession | None = None
    myaccount_url: str = ""
    notifies: bool = False

    @property
    def disabled_reason(self) -> str:
        return self.refusal.text if self.refusal is not None else ""


def _myaccount(console: Console) -> Application | None:
    return selectors.myaccount_for(org=console.org)


def _current(request: HttpRequest) -> ImpersonationSession | None:
    """The live impersonation this browser's sign-in is bound to, if any."""
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    return live_session_for(session) if session is not None else None


def impersonate_user_panel(request: HttpRequest, console: Console, member: User) -> dict[str, Any]:
    """The context of the Impersonate User panel on a Console user page (registered with
    ``identity.console.extensions`` by ``ImpersonationConfig.ready()``)."""
    return {
        "console": console,
        "member": member,
        "action": impersonate_action(request=request, console=console, member=member),
    }


def impersonate_action(
    *, request: HttpRequest, console: Console, member: User, policy_check: bool = True
) -> ImpersonateAction:
    """Hidden for yourself and for users managed by a parent organization (shared in);
    otherwise shown, disabled with the reason the policy (or a prerequisite) gives.
    ``policy_check=False`` looks only at the prerequisites (the caller runs the policy)."""
    if member.pk == console.user.pk or member.organization_id != console.org.pk:
        return ImpersonateAction(shown=False)
    current = _current(request)
    if current is not None and current.subject_id == member.pk and current.organization_id == console.org.pk:
        return ImpersonateAction(shown=True, live=current, myaccount_url=myaccount_url(console))
    myaccount = _myaccount(console)
    if myaccount is None:
        return ImpersonateAction(shown=True, refusal=refusal_for("myaccount", console=console, member=member))
    if not selectors.login_flows_compatible(org=console.org, myaccount=myaccount):
        return ImpersonateAction(
            shown=True, refusal=refusal_for("login-flow", console=console, member=member)
        )
    settings = org_effective_settings(console.org)
    notifies = settings.impersonation_email_enabled and bool(member.email)
    if not policy_check:
        return ImpersonateAction(shown=True, notifies=notifies)
    try:
        policy.evaluate(
            policy.Attempt(
                impersonator=console.user,
                subject_id=str(member.pk),
                org=console.org,
                application=myaccount,
                requested_scopes=(),
                chained=current is not None,
            )
        )
    except policy.Refused as refused:
        return ImpersonateAction(
            shown=True,
            refusal=refusal_for(refused.code, console=console, member=member, current=current),
            notifies=notifies,
        )
    return ImpersonateAction(shown=True, notifies=notifies)


def myaccount_url(console: Console) -> str:
    """My Account's Applications, where an impersonation from the Console lands (reversed by
    name: no import of the myaccount app)."""
    if console.is_root:
        return reverse("myaccount:applications", kwargs={"tenant": console.tenant.handle})
    return reverse(
        "org-myaccount:applications", kwargs={"tenant": console.tenant.handle, "org": console.org.pk}
    )


def _refused(
    request: HttpRequest,
    console: Console,
    member: User,
    refusal: Refusal,
    *,
    context: dict[str, Any] | None = None,
) -> HttpResponse:
    """The confirmation page saying why it cannot go on (409 when this browser is impersonating
    already, 403 otherwise): the Console's own page, never the bare 403 page."""
    return render(
        request,
        "impersonation/console/confirm.html",
        {
            **(context or {}),
            "console": console,
            "member": member,
            "refusal": refusal,
            "current": _current(request),
        },
        status=409 if refusal.code in ALREADY else 403,
    )


@console_page(scope="internal_user_mgt_view")
@require_http_methods(["GET", "POST"])
def impersonate_user(request: HttpRequest, console: Console, user_id: str) -> HttpResponse:
    """The confirmation page (GET) and its answer (POST, CSRF-protected): who, why, read-only.
    It answers in the same tab: a reason's problem under the reason; once started, the user's
    Console page says so with a link that opens My Account as the user in a new tab."""
    member = access_console_user(org=console.org, user_id=user_id)
    user_page = console.url("user-detail", member.pk)
    # The page shows why it is not possible; the POST runs the chain once, in the service.
    action = impersonate_action(
        request=request, console=console, member=member, policy_check=request.method == "GET"
    )
    if not action.shown:
        raise Http404("No such user.")
    if action.live is not None:
        messages.info(request, f"You are impersonating {member.username} already.")
        return SeeOther(user_page)
    if action.refusal is not None:
        return _refused(request, console, member, action.refusal)
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
    context: dict[str, Any] = {
        "console": console,
        "member": member,
        "reason": request.POST.get("reason", "")[: MAX_REASON + 1] if request.method == "POST" else "",
        "read_only": request.POST.get("read_only") == "on",
        "reason_required": settings.impersonation_reason_required,
        "max_minutes": settings.impersonation_max_minutes,
        "notifies": action.notifies,
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
        started, _attempt = impersonation_begin(
            actor=console.user,
            subject_id=str(member.pk),
            org=console.org,
            application=myaccount,
            sso_session=session,
            reason=reason,
            read_only=context["read_only"] is True,
            channel=ImpersonationSession.Channel.CONSOLE,
        )
    except policy.Refused as refused:
        impersonation_refused(
            actor=console.user,
            org=console.org,
            application=myaccount,
            refusal=refused,
            subject_id=str(member.pk),
            stage="console",
        )
        refusal = refusal_for(refused.code, console=console, member=member, current=_current(request))
        return _refused(request, console, member, refusal, context=context)
    # A new session key for the browser now acting on someone's behalf; End comes back here.
    request.session.cycle_key()
    remember_return(request, impersonation=started, path=user_page)
    messages.success(request, f"The impersonation of {member.display_name} ({member.username}) has started.")
    return SeeOther(user_page)


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
    if impersonation.ended_at is not None:
        messages.info(request, "That impersonation had already ended.")
        return SeeOther(console.url("impersonations"))
    session: SSOSession | None = getattr(request, "sso_session", None) or None
    if (
        session is not None
        and impersonation.sso_session_id == session.pk
        and impersonation.impersonator_id == console.user.pk
    ):
        # Your own, from the browser it is bound to: as the banner's End (back where you
        # started, still signed in as yourself).
        ended, back = end_in_this_browser(request, impersonation)
        if back is None:
            return HttpResponseRedirect(console.url("impersonations"))  # signed out: to sign in
        messages.success(request, ended_message(ended))
        return SeeOther(back or console.url("impersonations"))
    own = impersonation.impersonator_id == console.user.pk
    impersonation_end(
        actor=console.user,
        session=impersonation,
        reason=ImpersonationSession.EndReason.ENDED if own else ImpersonationSession.EndReason.FORCE_ENDED,
    )
    messages.success(
        request,
        f"Ended {impersonation.impersonator.username}'s impersonation of {impersonation.subject.username}; "
        "every token issued under it is revoked.",
    )
    return SeeOther(console.url("impersonations"))
