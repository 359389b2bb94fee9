"""Thin Celery tasks of identity."""

from __future__ import annotations

import logging

from celery import shared_task

log = logging.getLogger(__name__)


@shared_task(name="identity.tasks.audit_verify_all")
def audit_verify_all() -> dict[str, object]:
    """Verify every tenant's audit chain (scheduled hourly by celery beat)."""
    from identity.services.audit import audit_verify_all_chains

    reports = audit_verify_all_chains()
    broken = [r for r in reports if not r.ok]
    for report in broken:
        log.error(
            "audit chain of %s broken at event %s: %s", report.tenant_handle, report.broken_seq, report.reason
        )
    return {"tenants": len(reports), "broken": [r.tenant_handle for r in broken]}


@shared_task(name="identity.tasks.outbox_deliver", acks_late=True, ignore_result=True)
def outbox_deliver(message_id: str) -> str:
    """Deliver one outbox email (retries are scheduled in the row, not by Celery)."""
    from identity.services.outbox import outbox_deliver as deliver

    return deliver(message_id_value=message_id)


@shared_task(name="identity.tasks.outbox_requeue", ignore_result=True)
def outbox_requeue() -> int:
    """Publish outbox rows left pending (broker or SMTP was down). Scheduled by celery beat."""
    from identity.services.outbox import outbox_requeue_due

    return outbox_requeue_due()
