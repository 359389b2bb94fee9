"""How impersonation plugs into identity's OAuth server (``identity.hooks``)."""

from __future__ import annotations

import datetime as dt
import uuid

from django.utils import timezone

from identity.hooks import MintRefused, Principal, PrincipalRefused
from identity.models import Application, OAuthAuthorization, SSOSession, User
from impersonation import policy
from impersonation.models import ImpersonationSession
from impersonation.selectors import impersonation_read, live_session_for
from impersonation.services import (
    impersonation_end,
    impersonation_guard,
    impersonations_revalidate,
)
from organizations.models import Organization

MESSAGES = {
    "ended": "The impersonation has ended. Sign in again.",
    "expired": "The impersonation has reached its time limit. Sign in again.",
    "no-permission": "You may not impersonate users in this application.",
    "other-organization": "This sign-in is impersonating a user of another organization.",
}
GENERIC = "The impersonation can no longer continue. Sign in again."


def resolve_principal(*, session: SSOSession, application: Application, org: Organization) -> Principal:
    """A browser whose SSO session is bound to a live impersonation signs in as the target,
    as long as the impersonator passes the checks for this application; otherwise the sign-in
    is refused (never silently as the impersonator)."""
    current = live_session_for(session)
    if current is None:
        return Principal(user=session.user)
    if org.pk != current.organization_id:
        raise PrincipalRefused(MESSAGES["other-organization"])
    try:
        cap = impersonation_guard(session=current, application=application)
    except policy.Refused as refusal:
        raise PrincipalRefused(MESSAGES.get(refusal.code, GENERIC)) from refusal
    return Principal(
        user=current.subject,
        impersonator=current.impersonator,
        impersonation_id=current.pk,
        read_only=current.read_only,
        expires_cap=cap,
    )


def mint_guard(*, authorization: OAuthAuthorization, application: Application) -> int:
    """Before a code exchange or refresh of an impersonated authorization: the session must
    still be live and allowed; tokens live no longer than it."""
    if authorization.impersonation_id is None:
        raise MintRefused("not an impersonated authorization")
    impersonation_id = authorization.impersonation_id
    if not isinstance(impersonation_id, uuid.UUID):
        impersonation_id = uuid.UUID(str(impersonation_id))
    current = impersonation_read(impersonation_id)
    if current is None:
        raise MintRefused("no such impersonation")
    try:
        return impersonation_guard(session=current, application=application)
    except policy.Refused as refusal:
        raise MintRefused(refusal.code) from refusal


def on_sso_session_end(*, actor: User | None, session: SSOSession) -> None:
    """Signing out (or any end of the bound SSO session) ends its impersonation."""
    current = live_session_for(session)
    if current is not None:
        impersonation_end(actor=actor, session=current, reason=ImpersonationSession.EndReason.SIGNED_OUT)


def impersonation_of(*, session: SSOSession) -> Principal | None:
    current = live_session_for(session)
    if current is None:
        return None
    return Principal(
        user=current.subject,
        impersonator=current.impersonator,
        impersonation_id=current.pk,
        read_only=current.read_only,
    )


def live_until(*, impersonation_id: uuid.UUID) -> dt.datetime | None:
    """The end of a live impersonation; None once it has ended or its time is up."""
    live = (
        ImpersonationSession.objects.filter(pk=impersonation_id, ended_at__isnull=True)
        .only("expires_at")
        .first()
    )
    found = live.expires_at if live is not None else None
    return found if found is not None and found > timezone.now() else None


def read_only(*, impersonation_id: uuid.UUID) -> bool:
    """Whether the impersonation was started read-only (its tokens may not write)."""
    return ImpersonationSession.objects.filter(pk=impersonation_id, read_only=True).exists()


def revalidate(
    *,
    actor: User | None,
    tenant_id: uuid.UUID,
    user_ids: tuple[object, ...],
    org: Organization | None,
    application_id: int | None,
    everyone: bool,
) -> int:
    """A change in identity may have taken away live impersonations' grounds: end those."""
    return impersonations_revalidate(
        actor=actor,
        tenant_id=tenant_id,
        user_ids=user_ids,
        org=org,
        application_id=application_id,
        everyone=everyone,
    )
