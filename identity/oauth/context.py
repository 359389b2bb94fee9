"""The token request context (DESIGN §9): built once by the token endpoint and passed down the
grant, instead of being re-derived from the URL or hung on oauthlib's request piece by piece.

:class:`TokenContext` names where the request was sent (tenant, organization, endpoint) and the
client it names (read with the tenant, in one statement); :class:`Mint` is what the grant
decides for the tokens it mints (their organization, the authorization they belong to, ``act``,
the time cap). The grant sees both through :class:`ContextRequest`, oauthlib's request with one
typed field more.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve
from oauth2_provider.models import AccessToken, Grant
from oauthlib.common import Request

from identity.models import Application, OAuthAuthorization, SSOSession
from organizations.models import Organization
from organizations.selectors import org_get_in_tenant, org_is_usable, tenant_get


@dataclass
class Mint:
    """What the grant decided for the tokens it mints."""

    org: Organization | None = None
    authorization: OAuthAuthorization | None = None
    # An authorization of this request not saved yet (exchange, switch): inserted once, with
    # its first access token and refresh family, when the tokens are.
    unsaved: bool = False
    extra_claims: dict[str, Any] | None = None
    expires_cap: int | None = None
    sso_session: SSOSession | None = None
    # The family of the refresh token about to be minted (chosen up front, so the
    # authorization row is written once).
    refresh_family: uuid.UUID | None = None
    access_token_id: int | None = None
    # An access token built but not saved yet: saved with its refresh token, in one statement.
    pending_access_token: AccessToken | None = None
    # DOT's Grant row of an authorization code, read once per request.
    grant: Grant | None = None
    # Audiences the request asked for besides the client (RFC 8693 ``audience``/``resource``).
    audience: list[str] = field(default_factory=list)


@dataclass
class TokenContext:
    """One token request: where it was sent and the client it names."""

    tenant: Organization
    org: Organization
    # The client named by the request (Basic header or client_id), read with the tenant; None
    # when it names none of this tenant's. Not authenticated yet: the validator does that.
    client: Application | None
    endpoint: str = "token"
    mint: Mint = field(default_factory=Mint)


class ContextRequest(Request):
    """oauthlib's request for a token request made through :mod:`identity.oauth.service`."""

    context: TokenContext | None

    def __init__(self, *args: Any, context: TokenContext | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.context = context


def context_of(request: Request) -> TokenContext | None:
    """The token context of ``request`` (None for an unknown tenant, or outside the token
    endpoint)."""
    return request.context if isinstance(request, ContextRequest) else None


def mint_of(request: Request) -> Mint:
    context = context_of(request)
    return context.mint if context is not None else Mint()


def endpoint_context(request: Request) -> tuple[Organization, Organization] | None:
    """(tenant, organization) of the endpoint the request was sent to: a token request's from
    its context (built once by the token endpoint); the browser-facing endpoints' (authorize,
    revoke, introspect) from the URL they were sent to."""
    if isinstance(request, ContextRequest):
        context = request.context
        return (context.tenant, context.org) if context is not None else None
    cached = getattr(request, "actas_endpoint", None)
    if cached is not None:
        return cached or None
    found: tuple[Organization, Organization] | tuple[()] = ()
    try:
        match = resolve(urlsplit(request.uri).path)
    except Resolver404:
        match = None
    handle = match.kwargs.get("tenant") if match else None
    tenant = tenant_get(handle=handle) if isinstance(handle, str) else None
    if tenant is not None and org_is_usable(tenant):
        org_id = match.kwargs.get("org") if match else None
        org = tenant if org_id is None else org_get_in_tenant(tenant=tenant, org_id=org_id)
        if org is not None and (org is tenant or org_is_usable(org)):
            found = (tenant, org)
    request.actas_endpoint = found
    return found or None


def authorization_of(request: Request) -> OAuthAuthorization | None:
    return mint_of(request).authorization
