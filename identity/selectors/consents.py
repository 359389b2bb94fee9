"""Reads of remembered consents."""

from __future__ import annotations

from collections.abc import Iterable

from identity.models import Application, OAuthConsent, User
from organizations.models import Organization


def consent_covers(*, user: User, application: Application, org: Organization, scopes: Iterable[str]) -> bool:
    """Did the user already allow every one of ``scopes`` to this application here?"""
    found = (
        OAuthConsent.objects.filter(user=user, application=application, organization=org)
        .values_list("scope", flat=True)
        .first()
    )
    return found is not None and set(scopes) <= set(found.split())


def consents_of(user: User) -> list[OAuthConsent]:
    """The user's consents, with their application and organization, by application name."""
    return list(
        OAuthConsent.objects.filter(user=user)
        .select_related("application", "organization")
        .order_by("application__name", "organization__name")
    )


def consent_of(*, user: User, consent_id: int) -> OAuthConsent | None:
    """One of the user's own consents (None for anyone else's)."""
    return OAuthConsent.objects.filter(user=user, pk=consent_id).first()
