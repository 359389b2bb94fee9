"""The Console shell: resolving tenant and organization from the URL, the access check, and
URL reversing for the two Console mounts (``/t/<t>/console/`` and ``/t/<t>/o/<org>/console/``).

Each domain app owns its Console pages and wraps them with :func:`console_page`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate
from urllib.parse import parse_qsl

from django.core.exceptions import BadRequest
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from identity.access import access_console, access_org_in_tenant, access_tenant
from identity.models import User
from organizations.models import Organization
from organizations.selectors import org_ancestors

ROOT_NS = "console"
ORG_NS = "org-console"


def console_reverse(name: str, *, tenant: Organization, org: Organization, args: tuple[Any, ...] = ()) -> str:
    if org.pk == tenant.pk:
        return reverse(f"{ROOT_NS}:{name}", args=(tenant.handle, *args))
    return reverse(f"{ORG_NS}:{name}", args=(tenant.handle, org.pk, *args))


@dataclass
class Console:
    tenant: Organization
    org: Organization
    user: User
    scopes: frozenset[str]
    path: list[Organization]

    def url(self, name: str, *args: Any) -> str:
        return console_reverse(name, tenant=self.tenant, org=self.org, args=args)

    def url_for(self, org: Organization, name: str, *args: Any) -> str:
        return console_reverse(name, tenant=self.tenant, org=org, args=args)

    def can(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def is_root(self) -> bool:
        return self.org.pk == self.tenant.pk


ConsoleView = Callable[Concatenate[HttpRequest, Console, ...], HttpResponse]


UTF8 = {"utf-8", "utf8"}


def _form_not_utf8(request: HttpRequest) -> bool:
    """A form POST that is not UTF-8: another declared charset, or bytes that do not decode.

    The Console's pages are UTF-8 and browsers send their forms that way; anything else would
    be decoded with replacement characters (or as Latin-1) into names and labels nobody typed."""
    if request.method != "POST" or request.content_type != "application/x-www-form-urlencoded":
        return False
    if (request.encoding or "utf-8").lower() not in UTF8:
        return True
    try:  # raw bytes and %-escapes alike
        parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return True
    return False


def console_page(*, scope: str | None) -> Callable[[ConsoleView], Callable[..., HttpResponse]]:
    """Resolve the Console of the URL's organization and require ``scope`` there.

    Anonymous visitors never reach here (deny-by-default middleware sends them to sign in);
    signed-in users who are not administrators of this organization get the 403 page.
    """

    def decorate(view: ConsoleView) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(
            request: HttpRequest, tenant: str, *args: Any, org: Any = None, **kwargs: Any
        ) -> HttpResponse:
            if _form_not_utf8(request):
                raise BadRequest("Console forms are sent as UTF-8.")
            tenant_org = access_tenant(handle=tenant)
            current = access_org_in_tenant(tenant=tenant_org, org_id=org)
            user = request.user
            assert isinstance(user, User)
            path = org_ancestors(current, include_self=True)
            scopes = access_console(user=user, org=current, scope=scope, path=path)
            console = Console(tenant=tenant_org, org=current, user=user, scopes=scopes, path=path)
            request.console = console  # type: ignore[attr-defined]
            return view(request, console, *args, **kwargs)

        return wrapper

    return decorate
