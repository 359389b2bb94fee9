"""The My Account portal (DESIGN §1, §7): thin views over ``myaccount.client`` (who is shown),
the selectors (what is shown) and the identity / impersonation services (what changes).

Deny by default: every page goes through :func:`portal_page`, which resolves the tenant and
organization (404 when unknown, a clear 404 page when My Account is not shared there), and
shows nothing without a live My Account access token — without one, a GET starts the
authorization-code flow and any other method goes back to the start without changing
anything. While the token is impersonated (it carries ``act``) the impersonator sees the
user's Profile (editable unless the impersonation is read-only, the email address never),
Applications and Security (read-only); Access to my account and every other change stay closed.
Django's own sign-in state (``request.user``) is never used for who is shown.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from identity.access import access_org_in_tenant, access_tenant
from identity.models import Application, User
from identity.selectors.applications import application_available_in, tenant_system_application
from identity.selectors.consents import consents_of
from impersonation.misuse import impersonation_report_misuse
from impersonation.models import ImpersonationSession
from impersonation.services import impersonation_end as impersonation_end_service
from myaccount import client, selectors
from myaccount.access import access_own_impersonation
from myaccount.forms import MisuseReportForm, ProfileForm
from myaccount.services import myaccount_profile_update, myaccount_sign_out_other_sessions
from organizations.models import Organization
from organizations.selectors import org_is_usable

ROOT_NS = "myaccount"
ORG_NS = "org-myaccount"
MAX_PARAM = 2048


class SeeOther(HttpResponseRedirect):
    status_code = 303


def myaccount_reverse(
    name: str, *, tenant: Organization, org: Organization, args: tuple[Any, ...] = ()
) -> str:
    if org.pk == tenant.pk:
        return reverse(f"{ROOT_NS}:{name}", args=(tenant.handle, *args))
    return reverse(f"{ORG_NS}:{name}", args=(tenant.handle, org.pk, *args))


@dataclass
class Portal:
    tenant: Organization
    org: Organization
    app: Application
    identity: client.Identity

    @property
    def user(self) -> User:
        return self.identity.user

    @property
    def impersonator(self) -> User | None:
        return self.identity.impersonator

    @functools.cached_property
    def impersonation(self) -> ImpersonationSession | None:
        """The impersonation the token was minted under (None for the user's own)."""
        return selectors.impersonation_by_id(self.identity.impersonation_id)

    @property
    def read_only(self) -> bool:
        """A read-only impersonation: nothing can be changed."""
        return self.impersonation is not None and self.impersonation.read_only

    @property
    def is_root(self) -> bool:
        return self.org.pk == self.tenant.pk

    def url(self, name: str, *args: Any) -> str:
        return myaccount_reverse(name, tenant=self.tenant, org=self.org, args=args)

    @functools.cached_property
    def links(self) -> dict[str, str]:
        """The sections' URLs, for templates."""
        names = ("profile", "applications", "security", "access", "sign-out-others")
        return {name.replace("-", "_"): self.url(name) for name in names}

    @property
    def logout_url(self) -> str:
        if self.is_root:
            return reverse("logout", kwargs={"tenant": self.tenant.handle})
        return reverse("org-logout", kwargs={"tenant": self.tenant.handle, "org": self.org.pk})


def _malformed(request: HttpRequest) -> bool:
    """A NUL byte or an absurd length in the query: refused before use. (Forms check what is
    posted, field by field, and show their errors in place.)"""
    for key, values in request.GET.lists():
        if len(key) > 64 or any("\x00" in v or len(v) > MAX_PARAM for v in values):
            return True
    return False


def _bad_request(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "myaccount/message.html",
        {"title": "This request is not valid", "message": "Some of what was sent is malformed."},
        status=400,
    )


class Unavailable(Exception):
    """My Account does not serve this organization (not shared with it, or disabled)."""

    def __init__(self, org: Organization) -> None:
        super().__init__(org.name)
        self.org = org


def _resolve(tenant: str, org: Any) -> tuple[Organization, Organization, Application]:
    """Tenant, organization and My Account's application; Http404 when there is no such
    tenant or organization, :class:`Unavailable` when My Account does not serve it."""
    tenant_org = access_tenant(handle=tenant)
    current = access_org_in_tenant(tenant=tenant_org, org_id=org)
    app = tenant_system_application(tenant=tenant_org, key=Application.SystemKey.MYACCOUNT)
    if app is None:
        raise Http404("This tenant has no My Account.")
    # My Account is enabled in an organization when it is shared with it (always at the root).
    if not org_is_usable(current) or not application_available_in(application=app, org=current):
        raise Unavailable(current)
    return tenant_org, current, app


def _unavailable(request: HttpRequest, org: Organization) -> HttpResponse:
    return render(
        request,
        "myaccount/message.html",
        {
            "title": "My Account is not available here",
            "message": f"My Account is not enabled for {org.name}. Ask an administrator to share it "
            "with this organization.",
        },
        status=404,
    )


PortalView = Callable[Concatenate[HttpRequest, Portal, ...], HttpResponse]


def portal_page(*, impersonated: bool) -> Callable[[PortalView], Callable[..., HttpResponse]]:
    """Resolve the portal of the URL's organization and who My Account's live token is for.

    ``impersonated``: whether the page is open while the token is impersonated (Profile,
    Applications, Security); otherwise a GET goes to Applications and anything else is refused."""

    def decorate(view: PortalView) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(
            request: HttpRequest, tenant: str, *args: Any, org: Any = None, **kwargs: Any
        ) -> HttpResponse:
            if _malformed(request):
                return _bad_request(request)
            try:
                tenant_org, current, app = _resolve(tenant, org)
            except Unavailable as unavailable:
                return _unavailable(request, unavailable.org)
            identity = client.current_identity(request, tenant=tenant_org, org=current, app=app)
            if identity is None:
                if request.method != "GET":
                    # No change without a live sign-in: start again from the portal.
                    return SeeOther(myaccount_reverse("profile", tenant=tenant_org, org=current))
                next_url = request.get_full_path()
                url = client.sign_in_url(
                    request,
                    tenant=tenant_org,
                    org=current,
                    app=app,
                    next_url=next_url if len(next_url) <= MAX_PARAM else request.path,
                )
                return HttpResponseRedirect(url)
            portal = Portal(tenant=tenant_org, org=current, app=app, identity=identity)
            if identity.impersonated and not impersonated:
                if request.method == "GET":
                    return HttpResponseRedirect(portal.url("applications"))
                raise PermissionDenied("This is not available while impersonating.")
            request.myaccount = portal  # type: ignore[attr-defined]
            return view(request, portal, *args, **kwargs)

        return login_not_required(never_cache(wrapper))

    return decorate


def _render(
    request: HttpRequest,
    portal: Portal,
    template: str,
    context: dict[str, Any],
    *,
    section: str,
    status: int = 200,
) -> HttpResponse:
    return render(
        request,
        template,
        {"myaccount": portal, "section": section, **context},
        status=status,
    )


def _apply_errors(form: Any, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


# --- Profile -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@portal_page(impersonated=True)
def profile(request: HttpRequest, portal: Portal) -> HttpResponse:
    """The user's profile; while impersonating, the user's, changed by the impersonator through
    the same service (audited as done by the impersonator on the user's behalf)."""
    user = portal.user
    acting_as = user.display_name if portal.impersonator is not None else ""
    status = 200
    if request.method == "POST":
        form = ProfileForm(request.POST, impersonating=acting_as)
        status = 400
        # A read-only impersonation reaches the service only to be refused (and audited).
        if portal.read_only or form.is_valid():
            values = form.cleaned_data if not portal.read_only else {}
            try:
                myaccount_profile_update(
                    user=user,
                    org=portal.org,
                    impersonation=portal.impersonation,
                    given_name=values.get("given_name", user.given_name),
                    family_name=values.get("family_name", user.family_name),
                    email=values.get("email", user.email),
                    path=request.path,
                    client_id=portal.app.client_id,
                    scope=str(portal.identity.claims.get("scope", "")),
                )
            except PermissionDenied:
                status = 403
            except ValidationError as error:
                _apply_errors(form, error)
            else:
                saved = f"{user.display_name}'s profile is saved." if acting_as else "Your profile is saved."
                messages.success(request, saved)
                return SeeOther(portal.url("profile"))
    else:
        form = ProfileForm(
            initial={"given_name": user.given_name, "family_name": user.family_name, "email": user.email},
            impersonating=acting_as,
        )
    return _render(
        request, portal, "myaccount/profile.html", {"form": form}, section="profile", status=status
    )


# --- Applications ------------------------------------------------------------------------------


# An application launched from an organization's My Account is told which organization with
# ``orgId`` — the name actas's /authorize takes — so it signs in there, not at the root.
LAUNCH_ORG_PARAM = "orgId"


def launch_url(access_url: str, *, portal: Portal) -> str:
    """Where an application's link in My Account goes: its access URL; from a child
    organization's My Account, with ``orgId=<organization id>`` added (any ``orgId`` the
    access URL already has is replaced)."""
    if portal.is_root:
        return access_url
    parts = urlsplit(access_url)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != LAUNCH_ORG_PARAM]
    query = urlencode([*kept, (LAUNCH_ORG_PARAM, str(portal.org.pk))])
    return urlunsplit(parts._replace(query=query))


@dataclass(frozen=True)
class Launch:
    """An application as Applications lists it: where its link goes, and why it cannot be
    entered as the user ("" when it can)."""

    application: Application
    url: str
    blocked: str = ""


@require_GET
@portal_page(impersonated=True)
def applications(request: HttpRequest, portal: Portal) -> HttpResponse:
    if portal.impersonator is not None:
        found = selectors.impersonation_applications(
            impersonator=portal.impersonator, subject=portal.user, org=portal.org
        )
        launchable = [
            Launch(item.application, launch_url(item.application.access_url, portal=portal), item.blocked)
            for item in found
        ]
        context: dict[str, Any] = {"launchable": launchable}
    else:
        apps = selectors.user_applications(user=portal.user, org=portal.org)
        context = {
            "apps": [Launch(app, launch_url(app.access_url, portal=portal)) for app in apps],
            "consents": [(c, portal.url("consent-revoke", c.pk)) for c in consents_of(portal.user)],
        }
    return _render(request, portal, "myaccount/applications.html", context, section="applications")


# --- Security ----------------------------------------------------------------------------------


@require_GET
@portal_page(impersonated=True)
def security(request: HttpRequest, portal: Portal) -> HttpResponse:
    """Where the user is signed in; while impersonating, read-only (and none of them is this
    browser's: it is signed in as the impersonator)."""
    sessions = selectors.user_live_sso_sessions(portal.user)
    current_sid = "" if portal.impersonator is not None else portal.identity.sso_session.sid
    return _render(
        request,
        portal,
        "myaccount/security.html",
        {"sessions": sessions, "current_sid": current_sid},
        section="security",
    )


@require_POST
@portal_page(impersonated=False)
def sign_out_others(request: HttpRequest, portal: Portal) -> HttpResponse:
    ended = myaccount_sign_out_other_sessions(actor=portal.user, keep=portal.identity.sso_session)
    if ended:
        messages.success(request, f"Signed out of {ended} other session{'s' if ended != 1 else ''}.")
    else:
        messages.info(request, "There were no other sessions to sign out of.")
    return SeeOther(portal.url("security"))


# --- Access to my account ----------------------------------------------------------------------


def _render_access(
    request: HttpRequest,
    portal: Portal,
    *,
    forms: dict[uuid.UUID, MisuseReportForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    raw = request.GET.get("before", "")
    before = selectors.decode_cursor(raw) if raw else None
    if raw and before is None:
        return _bad_request(request)
    page = selectors.access_history(user=portal.user, tenant=portal.tenant, before=before)
    reported = selectors.reported_impersonations(
        tenant=portal.tenant, ids=[entry.session.pk for entry in page.entries]
    )
    forms = forms or {}
    rows = [
        {
            "entry": entry,
            "reported": entry.session.pk in reported,
            "form": forms.get(entry.session.pk) or MisuseReportForm(auto_id=f"id_%s_{entry.session.pk}"),
        }
        for entry in page.entries
    ]
    return _render(
        request,
        portal,
        "myaccount/access.html",
        {"rows": rows, "older": page.older, "paged": bool(raw)},
        section="access",
        status=status,
    )


@require_GET
@portal_page(impersonated=False)
def access(request: HttpRequest, portal: Portal) -> HttpResponse:
    return _render_access(request, portal)


@require_POST
@portal_page(impersonated=False)
def impersonation_end(request: HttpRequest, portal: Portal, impersonation: uuid.UUID) -> HttpResponse:
    session = access_own_impersonation(user=portal.user, tenant=portal.tenant, impersonation_id=impersonation)
    if session.ended_at is not None:
        messages.info(request, "That impersonation had already ended.")
    else:
        impersonation_end_service(
            actor=portal.user, session=session, reason=ImpersonationSession.EndReason.ENDED_BY_SUBJECT
        )
        messages.success(
            request,
            f"The impersonation by {session.impersonator.display_name} has ended; "
            "every token issued under it is revoked.",
        )
    return SeeOther(portal.url("access"))


@require_POST
@portal_page(impersonated=False)
def impersonation_report(request: HttpRequest, portal: Portal, impersonation: uuid.UUID) -> HttpResponse:
    session = access_own_impersonation(user=portal.user, tenant=portal.tenant, impersonation_id=impersonation)
    form = MisuseReportForm(request.POST, auto_id=f"id_%s_{session.pk}")
    if form.is_valid():
        try:
            notified = impersonation_report_misuse(
                actor=portal.user, session=session, note=form.cleaned_data["note"]
            )
        except ValidationError as error:
            _apply_errors(form, error)
        else:
            messages.success(
                request,
                "Thank you. Your report is recorded"
                + (
                    ngettext(
                        " and %(count)d administrator has been told.",
                        " and %(count)d administrators have been told.",
                        notified,
                    )
                    % {"count": notified}
                    if notified
                    else "."
                ),
            )
            return SeeOther(portal.url("access"))
    return _render_access(request, portal, forms={session.pk: form}, status=400)


# --- the OIDC callback -------------------------------------------------------------------------


@login_not_required
@never_cache
@require_GET
def callback(request: HttpRequest, tenant: str, org: Any = None) -> HttpResponse:
    """The authorization response for every organization's My Account (the one registered
    redirect URI): the organization comes from the pending sign-in named by ``state``."""
    if org is not None:
        raise Http404("No such page.")
    if _malformed(request):
        return _bad_request(request)
    tenant_org = access_tenant(handle=tenant)
    app = tenant_system_application(tenant=tenant_org, key=Application.SystemKey.MYACCOUNT)
    if app is None:
        raise Http404("This tenant has no My Account.")
    try:
        done = client.finish_sign_in(request, tenant=tenant_org, app=app)
    except client.SignInFailed as failure:
        return render(
            request,
            "myaccount/message.html",
            {
                "title": "You could not be signed in to My Account",
                "message": failure.message,
                "retry": reverse("myaccount:profile", kwargs={"tenant": tenant_org.handle}),
            },
            status=400,
        )
    current = (
        tenant_org
        if done.org_id == str(tenant_org.pk)
        else access_org_in_tenant(tenant=tenant_org, org_id=done.org_id)
    )
    home = myaccount_reverse("profile", tenant=tenant_org, org=current)
    target = done.next_url if done.next_url.startswith(home) and "\\" not in done.next_url else home
    return HttpResponseRedirect(target)
