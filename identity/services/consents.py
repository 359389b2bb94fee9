"""Remembered consents: what a user allowed an application in an organization."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from identity.audit.services import audit_record
from identity.models import Application, OAuthAuthorization, OAuthConsent, User
from identity.services.oauth import oauth_authorization_revoke
from organizations.models import Organization


@transaction.atomic
def consent_remember(
    *, user: User, application: Application, org: Organization, scopes: Iterable[str]
) -> OAuthConsent:
    """The user allowed ``scopes`` on the consent screen: remember them with what they allowed
    before (a consent only grows here; revoking it is how it shrinks). Audited when it grows."""
    consent, created = OAuthConsent.objects.select_for_update().get_or_create(
        user=user, application=application, organization=org
    )
    before = set(consent.scopes)
    after = before | set(scopes)
    if created or after != before:
        consent.scope = " ".join(sorted(after))
        consent.save(update_fields=["scope", "updated_at"])
        audit_record(
            org=org,
            action="consent-grant",
            actor=user,
            subject=user,
            target_type="application",
            target_id=application.client_id,
            client_id=application.client_id,
            data={"scopes": sorted(after - before)},
        )
    return consent


@transaction.atomic
def consent_revoke(*, actor: User, consent: OAuthConsent) -> int:
    """Forget a consent and revoke the tokens the application holds for the user in that
    organization (its next sign-in asks again). Returns how many authorizations were revoked."""
    locked = (
        OAuthConsent.objects.select_for_update()
        .select_related("application", "organization", "user")
        .filter(pk=consent.pk)
        .first()
    )
    if locked is None:
        return 0
    revoked = 0
    for authorization in OAuthAuthorization.objects.filter(
        user=locked.user,
        application=locked.application,
        organization=locked.organization,
        revoked_at__isnull=True,
    ).select_related("organization", "application", "user"):
        revoked += oauth_authorization_revoke(
            actor=actor, authorization=authorization, reason="consent-revoked"
        )
    audit_record(
        org=locked.organization,
        action="consent-revoke",
        actor=actor,
        subject=locked.user,
        target_type="application",
        target_id=locked.application.client_id,
        client_id=locked.application.client_id,
        data={"scopes": locked.scopes, "authorizations": revoked},
    )
    locked.delete()
    return revoked
