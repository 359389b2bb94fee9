"""Request context, the SSO session behind ``request.user``, and tenant-aware sign-in."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from identity import context
from identity.models import SSOSession, User
from identity.services.sessions import sso_session_get_live, sso_session_touch

SSO_SESSION_KEY = "actas.sso.sid"


class RequestContextMiddleware:
    """Give every request an id (honouring a well-formed ``X-Request-ID``) and bind the
    request id and client address for the audit trail."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ctx = context.RequestContext(
            request_id=context.new_request_id(request.headers.get("X-Request-ID")),
            ip=context.client_ip(request.META, trusted_proxies=settings.ACTAS_TRUSTED_PROXIES),
        )
        request.request_id = ctx.request_id  # type: ignore[attr-defined]
        with context.bound(ctx):
            response = self.get_response(request)
        response["X-Request-ID"] = ctx.request_id
        return response


def _resolve(request: HttpRequest) -> tuple[User | AnonymousUser, SSOSession | None]:
    cached = getattr(request, "_actas_auth", None)
    if cached is not None:
        return cached
    user = auth.get_user(request)
    session: SSOSession | None = None
    if user.is_authenticated:
        session = sso_session_get_live(sid=request.session.get(SSO_SESSION_KEY, ""))
        if session is None or session.user_id != user.pk:
            # The SSO session ended (sign-out elsewhere, expiry, End impersonation): the
            # browser is signed out everywhere. (Cache the outcome first: logout() reads
            # request.user, which would land back here.)
            user, session = AnonymousUser(), None
            request._actas_auth = (user, session)  # type: ignore[attr-defined]
            auth.logout(request)
        else:
            sso_session_touch(session)
    result = (user, session)
    request._actas_auth = result  # type: ignore[attr-defined]
    return result


class SSOSessionMiddleware:
    """``request.user`` is signed in only while its SSO session is live."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.user = SimpleLazyObject(lambda: _resolve(request)[0])  # type: ignore[assignment]
        request.sso_session = SimpleLazyObject(lambda: _resolve(request)[1])  # type: ignore[attr-defined]
        return self.get_response(request)


class TenantLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Deny by default; send an anonymous visitor to the sign-in page of the tenant (and
    organization) named in the URL."""

    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Callable[..., HttpResponseBase]
    ) -> HttpResponseBase:
        match = request.resolver_match
        kwargs = match.kwargs if match else {}
        tenant = kwargs.get("tenant")
        if not tenant:
            return HttpResponse("Sign-in required.", status=401, content_type="text/plain")
        if kwargs.get("org"):
            url = reverse("org-login", kwargs={"tenant": tenant, "org": kwargs["org"]})
        else:
            url = reverse("login", kwargs={"tenant": tenant})
        return HttpResponseRedirect(f"{url}?{urlencode({'next': request.get_full_path()})}")
