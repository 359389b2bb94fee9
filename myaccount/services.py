"""My Account's own writes: compositions of identity services for a self-service action."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from identity.audit.services import audit_record, audit_refusal
from identity.models import SSOSession, User
from identity.services.sessions import sso_session_end
from identity.services.users import user_profile_update
from impersonation.models import ImpersonationSession
from organizations.models import Organization

#: The audit action of a change made while impersonating (DESIGN §5.6), as the APIs record it.
MODIFIED_VIA_IMPERSONATION = "resource-modification-via-impersonation"


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


def _via_impersonation(
    *,
    org: Organization,
    impersonation: ImpersonationSession,
    path: str,
    method: str,
    client_id: str,
    scope: str,
    status: int,
    error: str = "",
) -> dict[str, Any]:
    """The fields of a ``resource-…-via-impersonation`` event, as the APIs write them
    (identity.api.base): subject, impersonator, path, method, client, scope, impersonation."""
    data: dict[str, Any] = {
        "subject": str(impersonation.subject_id),
        "impersonator": str(impersonation.impersonator_id),
        "ResourcePath": path,
        "httpMethod": method,
        "clientId": client_id,
        "scope": scope,
        "impersonationId": str(impersonation.pk),
        "status": status,
    }
    if error:
        data["error"] = error[:500]
    return {
        "org": org,
        "action": MODIFIED_VIA_IMPERSONATION,
        "actor": impersonation.impersonator,
        "impersonator": impersonation.impersonator,
        "subject": impersonation.subject,
        "target_type": "user",
        "target_id": impersonation.subject_id,
        "client_id": client_id,
        "scopes": scope,
        "data": data,
    }


READ_ONLY_REFUSAL = "This impersonation is read-only: nothing can be changed."


def myaccount_profile_update(
    *,
    user: User,
    org: Organization,
    impersonation: ImpersonationSession | None,
    given_name: str,
    family_name: str,
    email: str,
    path: str,
    client_id: str,
    scope: str,
    method: str = "POST",
) -> User:
    """The Profile form of My Account: the user's own change, or, under ``impersonation``, the
    impersonator's change to the user's profile through the same service
    (``user_profile_update`` with the impersonator, so the email address stays as it is),
    recorded as ``resource-modification-via-impersonation`` naming the impersonator in the
    same transaction. A read-only impersonation changes nothing (``PermissionDenied``); a
    refused change (``ValidationError``) is recorded as a failure, in its own transaction."""
    if impersonation is None:
        return user_profile_update(
            actor=user,
            user=user,
            impersonator=None,
            given_name=given_name,
            family_name=family_name,
            email=email,
        )

    def event(status: int, error: str = "") -> dict[str, Any]:
        return _via_impersonation(
            org=org,
            impersonation=impersonation,
            path=path,
            method=method,
            client_id=client_id,
            scope=scope,
            status=status,
            error=error,
        )

    if impersonation.read_only:
        audit_refusal(**event(403, READ_ONLY_REFUSAL))
        raise PermissionDenied(READ_ONLY_REFUSAL)
    refused: ValidationError | None = None
    with transaction.atomic():
        # The row as it is, locked (the service locks it again: a no-op), to tell a change.
        before = (
            User.objects.select_for_update().values_list("given_name", "family_name", "email").get(pk=user.pk)
        )
        try:
            saved = user_profile_update(
                actor=impersonation.impersonator,
                user=user,
                impersonator=impersonation.impersonator,
                given_name=given_name,
                family_name=family_name,
                email=email,
            )
        except ValidationError as error:
            refused = error  # nothing changed; the service's own refusal event (if any) stands
        else:
            if (saved.given_name, saved.family_name, saved.email) != tuple(before):
                audit_record(**event(303))
    if refused is not None:
        audit_refusal(**event(400, "; ".join(refused.messages)))
        raise refused
    return saved
