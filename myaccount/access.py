"""My Account's authorization checks: each returns the object or raises (404)."""

from __future__ import annotations

import uuid

from django.http import Http404

from identity.models import User
from impersonation.models import ImpersonationSession
from organizations.models import Organization


def access_own_impersonation(
    *, user: User, tenant: Organization, impersonation_id: uuid.UUID
) -> ImpersonationSession:
    """An impersonation of ``user`` in ``tenant``; anybody else's is simply not found."""
    session = (
        ImpersonationSession.objects.select_related(
            "impersonator", "subject", "organization", "tenant", "application", "sso_session"
        )
        .filter(pk=impersonation_id, subject=user, tenant=tenant)
        .first()
    )
    if session is None:
        raise Http404("No such impersonation.")
    return session
