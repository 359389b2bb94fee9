"""Verifying a tenant's audit chain on demand, and recording that it was verified.

Recomputing the chain reads every event of the tenant, which is too slow to do on every
view of the Console's Logs page. The page shows the last recorded verification instead and
offers "Verify now": this service runs :func:`audit_verify_chain` and appends the result to
the chain itself (action ``audit-chain-verify``), so every administrator sees when the chain
was last checked, by whom, and what was found — and the record is tamper-evident too.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from identity.audit.models import AuditEvent
from identity.audit.selectors import VERIFY_ACTION, audit_last_verification
from identity.audit.services import ChainReport, audit_record, audit_verify_chain
from organizations.models import Organization
from organizations.selectors import org_tenant

if TYPE_CHECKING:  # the audit trail records people by id and label; it needs no User at run time
    from identity.models import User

# Verifying reads the whole chain: any administrator may ask for it, but not over and over.
VERIFY_COOLDOWN = dt.timedelta(seconds=60)


def audit_chain_verify(*, actor: User | None, org: Organization) -> ChainReport | None:
    """Verify the chain of ``org``'s tenant and record the outcome (``failure`` when broken).

    Returns None, verifying nothing, when the tenant's chain was verified less than
    :data:`VERIFY_COOLDOWN` ago (its result is the one to look at)."""
    last = audit_last_verification(org=org)
    if last is not None and timezone.now() - last.created_at < VERIFY_COOLDOWN:
        return None
    tenant = org_tenant(org)
    report = audit_verify_chain(tenant=tenant)
    with transaction.atomic():
        audit_record(
            tenant=tenant,
            org=org,
            action=VERIFY_ACTION,
            actor=actor,
            target_type="audit-chain",
            target_id=tenant.pk,
            outcome=AuditEvent.Outcome.SUCCESS if report.ok else AuditEvent.Outcome.FAILURE,
            data={
                "ok": report.ok,
                "events": report.events,
                "broken_seq": report.broken_seq,
                "reason": report.reason,
                "head_hash": report.head_hash,
            },
        )
    return report
