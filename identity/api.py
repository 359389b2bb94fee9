"""actas's own REST APIs (DRF), called by applications with actas access tokens.

Every API authenticates with :class:`BearerTokenAuthentication` (signature, ``iss``, ``exp``,
revocation: ``identity.oauth.bearer``) and scopes its results by the token's ``org_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.access import access_tenant
from identity.models import User
from identity.oauth.bearer import bearer_token, live_access_token
from identity.selectors import user_switchable_organizations
from organizations.selectors import org_get_in_tenant


@dataclass(frozen=True)
class AccessTokenAuth:
    """What DRF keeps as ``request.auth``: the verified claims and the token's organization."""

    claims: dict[str, Any]
    org_id: str

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope", "")).split())


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[User, AccessTokenAuth] | None:
        raw = bearer_token(request._request)
        if not raw:
            return None
        tenant = access_tenant(handle=request.parser_context["kwargs"]["tenant"])
        found = live_access_token(tenant, raw)
        if found is None:
            raise exceptions.AuthenticationFailed("The access token is invalid or expired.")
        claims, stored = found
        if stored.user is None:
            raise exceptions.AuthenticationFailed("This API needs a user's access token.")
        return stored.user, AccessTokenAuth(claims=claims, org_id=str(claims.get("org_id", "")))

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer error="invalid_token"'


class MyOrganizations(APIView):
    """``GET /t/<t>/api/users/v1/me/organizations``: where the token's user may switch to."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]

    def get(self, request: Request, tenant: str) -> Response:
        auth = request.auth
        user = request.user
        assert isinstance(auth, AccessTokenAuth) and isinstance(user, User)
        tenant_org = access_tenant(handle=tenant)
        org = org_get_in_tenant(tenant=tenant_org, org_id=auth.org_id)
        if org is None:
            raise exceptions.NotFound()
        client_id = str(auth.claims.get("client_id", ""))
        rows = user_switchable_organizations(user=user, org=org, client_id=client_id)
        return Response(
            {
                "organizations": [
                    {"id": str(o.pk), "name": o.name, "parentId": str(o.parent_id) if o.parent_id else None}
                    for o in rows
                ]
            }
        )
