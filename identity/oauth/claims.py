"""What actas's tokens say: the claims of access tokens, ID tokens and userinfo (DESIGN §4).

Pure functions of the people, organization and client involved; ``identity.oauth.tokens`` signs.
:func:`oauth_id_token_issue` signs an ID token and keeps its ``jti``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

from django.conf import settings
from django.utils import timezone
from oauth2_provider.models import IDToken

from identity.models import Application, SSOSession, User
from identity.oauth import tokens
from organizations.models import Organization

ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 (a JOSE type)
ID_TOKEN_TYP: Final = "JWT"  # noqa: S105


AUT_USER: Final = "APPLICATION_USER"
AUT_APPLICATION: Final = "APPLICATION"

PROFILE_CLAIMS: Final = ("name", "given_name", "family_name", "preferred_username", "updated_at")
EMAIL_CLAIMS: Final = ("email", "email_verified")


def issuer_for(tenant: Organization) -> str:
    """``{BASE_URL}/t/<t>/oauth2/token``: the issuer of every token of the tenant."""
    return f"{settings.BASE_URL}/t/{tenant.handle}/oauth2/token"


def token_checksum(token: str) -> str:
    """How DOT stores tokens (SHA-256 hex), so a JWT is found again without keeping it."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def organization_claims(*, org: Organization, user: User | None) -> dict[str, Any]:
    claims: dict[str, Any] = {"org_id": str(org.pk), "org_name": org.name}
    if user is not None and user.organization_id != org.pk:
        claims["user_org"] = str(user.organization_id)
    return claims


def access_token_claims(
    *,
    tenant: Organization,
    org: Organization,
    client: Application,
    user: User | None,
    scopes: Iterable[str],
    issued_at: int,
    expires_in: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The claims of an access token. ``user`` None means client credentials
    (``aut: APPLICATION``, ``sub`` = the client id). ``extra`` carries ``act`` and
    ``impersonation_id`` under impersonation."""
    claims: dict[str, Any] = {
        "iss": issuer_for(tenant),
        "sub": str(user.pk) if user is not None else client.client_id,
        "aud": client.client_id,
        "azp": client.client_id,
        "client_id": client.client_id,
        "scope": " ".join(sorted(set(scopes))),
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + expires_in,
        "jti": tokens.new_jti(),
        "aut": AUT_USER if user is not None else AUT_APPLICATION,
        **organization_claims(org=org, user=user),
    }
    if extra:
        claims.update(extra)
    return claims


def user_claims(*, user: User, scopes: Iterable[str]) -> dict[str, Any]:
    """Standard OIDC claims the granted scopes release (``profile``, ``email``)."""
    granted = set(scopes)
    claims: dict[str, Any] = {}
    if "profile" in granted:
        claims.update(
            {
                "name": user.display_name,
                "given_name": user.given_name,
                "family_name": user.family_name,
                "preferred_username": user.username,
            }
        )
        claims = {k: v for k, v in claims.items() if v}
    if "email" in granted and user.email:
        claims["email"] = user.email
        # actas does not verify addresses yet; say so rather than imply it.
        claims["email_verified"] = False
    return claims


def id_token_claims(
    *,
    tenant: Organization,
    org: Organization,
    client: Application,
    user: User,
    scopes: Iterable[str],
    session: SSOSession | None,
    issued_at: int,
    base: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    expires_cap: int | None = None,
) -> dict[str, Any]:
    """The claims of an ID token. ``base`` holds what oauthlib computed (``aud``, ``nonce``,
    ``at_hash``, ``c_hash``); ``isk``/``sid`` name the SSO session by its opaque id."""
    lifetime = client.id_token_lifetime if expires_cap is None else min(client.id_token_lifetime, expires_cap)
    claims: dict[str, Any] = dict(base)
    claims.update(
        {
            "iss": issuer_for(tenant),
            "sub": str(user.pk),
            "aud": client.client_id,
            "azp": client.client_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + lifetime,
            # DOT keeps ID tokens by jti in a UUID column.
            "jti": str(uuid.uuid4()),
            **organization_claims(org=org, user=user),
            **user_claims(user=user, scopes=scopes),
        }
    )
    if session is not None:
        claims["auth_time"] = int(session.auth_time.timestamp())
        claims["amr"] = list(session.amr)
        claims["sid"] = session.sid
        claims["isk"] = session.sid
    if extra:
        claims.update(extra)
    return claims


def oauth_id_token_issue(
    *,
    tenant: Organization,
    org: Organization,
    client: Application,
    user: User,
    scopes: Iterable[str],
    session: SSOSession | None,
    base: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    expires_cap: int | None = None,
) -> tuple[str, IDToken]:
    """Sign an ID token with the tenant's key set and keep its ``jti`` (DOT's IDToken row), so
    it can later be recognised as issued to ``client`` (an actor token, a logout hint)."""
    scopes = list(scopes)
    claims = id_token_claims(
        tenant=tenant,
        org=org,
        client=client,
        user=user,
        scopes=scopes,
        session=session,
        issued_at=int(timezone.now().timestamp()),
        base=base or {},
        extra=extra,
        expires_cap=expires_cap,
    )
    signed = tokens.mint(claims, typ=ID_TOKEN_TYP)
    stored = IDToken.objects.create(
        user=user,
        application=client,
        jti=claims["jti"],
        scope=" ".join(scopes),
        expires=dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC),
    )
    return signed, stored
