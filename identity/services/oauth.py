"""OAuth authorizations: revoking what a sign-in produced."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, IDToken, RefreshToken, revoke_access_token

from identity import tokens
from identity.models import Application, OAuthAuthorization, SSOSession, User
from identity.oauth import claims as oauth_claims
from identity.services.audit import audit_record
from organizations.models import Organization


def _revoke_tokens(authorization: OAuthAuthorization) -> None:
    if authorization.first_access_token_id:
        first = AccessToken.objects.filter(pk=authorization.first_access_token_id).first()
        if first is not None:
            revoke_access_token(first)
    if authorization.refresh_family:
        # Revokes every refresh token of the family and deletes their access tokens.
        RefreshToken.revoke_family(authorization.refresh_family)


@transaction.atomic
def oauth_authorization_revoke(*, actor: User | None, authorization: OAuthAuthorization, reason: str) -> bool:
    """Revoke every token an authorization produced: the first access token and the whole
    refresh-token family with its access tokens. Returns False if it was revoked already."""
    locked = OAuthAuthorization.objects.select_for_update().get(pk=authorization.pk)
    if locked.revoked_at is not None:
        return False
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    _revoke_tokens(locked)
    audit_record(
        org=locked.organization,
        action="oauth-authorization-revoke",
        actor=actor,
        subject=locked.user,
        target_type="application",
        target_id=locked.application.client_id,
        client_id=locked.application.client_id,
        data={"authorization": locked.pk, "reason": reason},
    )
    return True


def oauth_session_revoke(*, actor: User | None, session: SSOSession, reason: str) -> int:
    """Revoke the tokens of every authorization made in an SSO session (sign-out)."""
    count = 0
    for authorization in OAuthAuthorization.objects.filter(
        sso_session=session, revoked_at__isnull=True
    ).select_related("organization", "application", "user"):
        count += oauth_authorization_revoke(actor=actor, authorization=authorization, reason=reason)
    return count


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
    claims = oauth_claims.id_token_claims(
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
    signed = tokens.mint(claims, typ=oauth_claims.ID_TOKEN_TYP)
    stored = IDToken.objects.create(
        user=user,
        application=client,
        jti=claims["jti"],
        scope=" ".join(scopes),
        expires=dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC),
    )
    return signed, stored
