"""Bearer access tokens presented to actas's own endpoints and APIs (DESIGN §4): signature,
``typ``, ``iss``, ``exp``, and the stored row (revocation), for a user who may still sign in."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from oauth2_provider.models import AccessToken

from identity.hooks import impersonation_live_until
from identity.oauth import claims as oauth_claims
from identity.oauth import tokens
from organizations.models import Organization
from organizations.selectors import org_id_is_usable


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        return request.POST.get("access_token", "")
    return ""


def _access_token_by_checksum(checksum: str) -> AccessToken | None:
    """Every API call, userinfo and organization switch reads its access token's row (the
    checksum is unique: no ordering needed)."""
    found = (
        AccessToken.objects.select_related("application", "user").filter(token_checksum=checksum).order_by()
    )
    return next(iter(found[:1]), None)


def live_access_token(
    tenant: Organization,
    raw: str,
    *,
    live_until: Callable[[uuid.UUID], dt.datetime | None] | None = None,
) -> tuple[dict[str, Any], AccessToken] | None:
    """The claims and stored row of a live access token of this tenant, else None.

    ``live_until``: how the end of the impersonation a token names is read (default: the
    ``ACTAS_IMPERSONATION_LIVE_UNTIL`` hook); a caller that needs the impersonation's row
    anyway reads it there, once. Either way a token of an impersonation that has ended (or
    whose time is up) is not live."""
    try:
        claims = tokens.verify(
            raw,
            typ=oauth_claims.ACCESS_TOKEN_TYP,
            issuer=oauth_claims.issuer_for(tenant),
            audience=tokens.ANY_AUDIENCE,
            required=("exp", "iat", "iss", "sub", "client_id", "jti"),
        )
    except tokens.TokenError:
        return None
    stored = _access_token_by_checksum(oauth_claims.token_checksum(raw))
    if stored is None or stored.is_expired() or stored.application is None:
        return None
    if stored.user is not None and not stored.user.can_sign_in:
        return None  # disabled or locked since
    if stored.application.client_id != claims.get("client_id"):
        return None
    # A token of a child organization stops when it or an ancestor is disabled (one indexed
    # query; a tenant's root cannot be disabled, so its tokens need none).
    org_id = claims.get("org_id")
    if org_id is not None and str(org_id) != str(tenant.pk):
        try:
            usable = org_id_is_usable(uuid.UUID(str(org_id)))
        except ValueError:
            usable = False
        if not usable:
            return None
    # Minted under an impersonation: good only while it lives (End, the cap, a failed re-check),
    # whatever its own expiry says.
    if "impersonation_id" in claims:
        if live_until is None:
            until = impersonation_live_until(claims["impersonation_id"])
        else:
            try:
                until = live_until(uuid.UUID(str(claims["impersonation_id"])))
            except ValueError:
                until = None
        if until is None or until <= timezone.now():
            return None
    return claims, stored
