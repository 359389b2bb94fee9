"""OAuth authorizations: revoking what a sign-in produced."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken, revoke_access_token

from identity.audit.services import audit_record
from identity.models import Application, OAuthAuthorization, SSOSession, User


def _revoke_tokens(authorization: OAuthAuthorization) -> None:
    if authorization.first_access_token_id:
        first = AccessToken.objects.filter(pk=authorization.first_access_token_id).first()
        if first is not None:
            revoke_access_token(first)
    if authorization.refresh_family:
        # Revokes every refresh token of the family and deletes their access tokens.
        RefreshToken.revoke_family(authorization.refresh_family)


def oauth_client_tokens_revoke(application: Application) -> int:
    """Revoke the application's own tokens (client credentials: no user), e.g. when an API it
    was authorized for is taken away or narrowed; it asks for new ones with what it may still
    have. Returns how many. The caller audits the change that made this necessary."""
    tokens = list(AccessToken.objects.filter(application=application, user__isnull=True))
    for token in tokens:
        revoke_access_token(token)
    return len(tokens)


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
