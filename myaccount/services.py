"""My Account's own writes: compositions of identity services for a self-service action."""

from __future__ import annotations

from django.db import transaction

from identity.models import SSOSession, User
from identity.services.sessions import sso_session_end


@transaction.atomic
def myaccount_sign_out_other_sessions(*, actor: User, keep: SSOSession) -> int:
    """ "Sign out everywhere else": end every other live SSO session of ``actor`` (which
    revokes the tokens applications got in them, as an OIDC logout does). Returns how many."""
    ended = 0
    others = SSOSession.objects.filter(user=actor, ended_at__isnull=True).exclude(pk=keep.pk)
    for session in others.select_related("organization", "user"):
        sso_session_end(actor=actor, session=session, reason="signed-out-elsewhere")
        ended += 1
    return ended
