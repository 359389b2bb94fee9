"""Whether a live impersonation still has its grounds: the policy allows it and the
application it started with still allows it in its organization."""

from __future__ import annotations

from identity.models import Application
from identity.selectors.applications import application_available_in
from impersonation import policy
from impersonation.models import ImpersonationSession


def _application_grounds(session: ImpersonationSession) -> None:
    """The application the impersonation started with still allows it in its organization:
    shared there, and, for an impersonation started by token exchange, with subject tokens
    and the token-exchange grant still on."""
    application = session.application
    if session.channel == ImpersonationSession.Channel.TOKEN_EXCHANGE and not (
        application.subject_token_enabled
        and application.allows_grant_type(Application.GRANT_TOKEN_EXCHANGE_TYPE)
    ):
        raise policy.Refused(
            "application-impersonation-off",
            f"{application.client_id} no longer allows subject tokens and the token exchange.",
        )
    if not application_available_in(application=application, org=session.organization):
        raise policy.Refused(
            "application-unavailable",
            f"{application.client_id} is no longer available in {session.organization.name}.",
        )


def impersonation_grounds(session: ImpersonationSession) -> policy.Refused | None:
    """What takes away a live impersonation's grounds, or None while it may go on: both
    accounts' status (disabled, locked, the target protected), the organization and its
    ancestors being active, dominance, the application still allowing impersonation there,
    and the impersonator's permission for it. Reads the rows as they are now (in the caller's
    transaction: a change just made counts)."""
    try:
        policy.recheck(impersonator=session.impersonator, subject=session.subject, org=session.organization)
        _application_grounds(session)
        policy.check_impersonator_permission(
            policy.Attempt(
                impersonator=session.impersonator,
                subject_id=str(session.subject_id),
                org=session.organization,
                application=session.application,
                requested_scopes=(),
            )
        )
    except policy.Refused as refusal:
        return refusal
    return None
