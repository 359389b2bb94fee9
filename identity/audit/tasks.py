"""Thin Celery tasks of the audit trail.

Task names keep the ``identity.tasks.`` prefix they had before the audit trail became an app
of its own, so messages already queued and the beat schedule stay valid."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="identity.tasks.audit_verify_all")
def audit_verify_all() -> dict[str, object]:
    """Verify every tenant's audit chain (scheduled hourly by celery beat)."""
    from identity.audit.services import audit_verify_all_chains

    reports = audit_verify_all_chains()
    broken = [r for r in reports if not r.ok]
    for report in broken:
        log.error(
            "audit chain of %s broken at event %s: %s", report.tenant_handle, report.broken_seq, report.reason
        )
    return {"tenants": len(reports), "broken": [r.tenant_handle for r in broken]}
