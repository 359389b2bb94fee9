"""The impersonated user reports an impersonation of their account as misuse: audited and
emailed to the organization administrators."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from identity.audit.models import AuditEvent
from identity.audit.services import audit_record
from identity.models import User
from identity.notifications.outbox import outbox_enqueue
from identity.selectors.roles import role_assignments_in_org, tenant_system_role
from identity.services.tenants import ADMINISTRATOR_ROLE
from impersonation.models import ImpersonationSession
from impersonation.services import utc_minutes
from organizations.selectors import org_ancestors

MAX_MISUSE_NOTE = 2000


MISUSE_REPORTED = "impersonation-misuse-reported"


def _misuse_recipients(session: ImpersonationSession, *, reporter: User) -> list[User]:
    """The administrators of the impersonation's organization (Administrator role assigned
    there), or of its nearest ancestor that has any: never the impersonator being reported nor
    the reporter, only active accounts with an email address."""
    administrator = tenant_system_role(tenant=session.tenant, name=ADMINISTRATOR_ROLE)
    excluded = {session.impersonator_id, reporter.pk}
    for node in reversed(org_ancestors(session.organization, include_self=True)):
        found: dict[object, User] = {}
        for assignment in role_assignments_in_org(role=administrator, org=node):
            person = assignment.user or (assignment.association.user if assignment.association else None)
            if person is None or person.pk in excluded or not person.can_sign_in or not person.email:
                continue
            found[person.pk] = person
        if found:
            return sorted(found.values(), key=lambda u: u.username)
    return []


@transaction.atomic
def impersonation_report_misuse(*, actor: User, session: ImpersonationSession, note: str) -> int:
    """The impersonated user reports an impersonation of their account as misuse: audited
    (``impersonation-misuse-reported``) and emailed, through the outbox, to each administrator
    of the organization. Once per impersonation. Returns how many emails were queued."""
    if "\x00" in (note or ""):
        raise ValidationError({"note": ["Remove the control characters."]})
    clean = (note or "").strip()
    if len(clean) > MAX_MISUSE_NOTE:
        raise ValidationError({"note": [f"Use at most {MAX_MISUSE_NOTE} characters."]})
    locked = (
        ImpersonationSession.objects.select_for_update()
        .select_related("impersonator", "subject", "organization", "tenant", "application")
        .get(pk=session.pk)
    )
    if locked.subject_id != actor.pk:
        raise PermissionDenied("Only the impersonated user can report this impersonation.")
    already = AuditEvent.objects.filter(
        tenant_id=locked.tenant_id, action=MISUSE_REPORTED, target_id=str(locked.pk)
    ).exists()
    if already:
        raise ValidationError("You have already reported this impersonation.")
    recipients = _misuse_recipients(locked, reporter=actor)
    impersonator = locked.impersonator
    context = {
        "org_name": locked.organization.name,
        "reporter_name": actor.display_name,
        "reporter_username": actor.username,
        "impersonator_name": impersonator.display_name,
        "impersonator_username": impersonator.username,
        "started_at": utc_minutes(locked.started_at),
        "ended_at": utc_minutes(locked.ended_at),
        "reason": locked.reason,
        "note": clean,
        "impersonation_id": str(locked.pk),
    }
    for admin in recipients:
        outbox_enqueue(
            tenant=locked.tenant,
            kind="impersonation-misuse",
            template="impersonation_misuse",
            to_email=admin.email,
            context={**context, "admin_name": admin.display_name},
        )
    audit_record(
        org=locked.organization,
        action=MISUSE_REPORTED,
        actor=actor,
        subject=actor,
        target_type="impersonation",
        target_id=locked.pk,
        client_id=locked.application.client_id,
        data={
            "note": clean,
            "impersonator": str(impersonator.pk),
            "impersonator_username": impersonator.username,
            "active": locked.ended_at is None,
            "notified": [admin.username for admin in recipients],
        },
    )
    return len(recipients)
