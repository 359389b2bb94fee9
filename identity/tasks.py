"""Thin Celery tasks of identity."""

from __future__ import annotations

import logging

from celery import Task, shared_task

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


@shared_task(name="identity.tasks.outbox_deliver", bind=True, acks_late=True, ignore_result=True)
def outbox_deliver(self: Task, message_id: str) -> str:
    """Deliver one outbox email (retries are scheduled in the row, not by Celery); in a
    worker, then drain other new rows over the same SMTP connection (``outbox_deliver_batch``).
    Run eagerly (the embedded mode) it sends its own row only."""
    from identity.services.outbox import outbox_deliver as deliver
    from identity.services.outbox import outbox_deliver_batch

    if self.request.is_eager:
        return deliver(message_id_value=message_id)
    outcomes = outbox_deliver_batch(message_id_value=message_id)
    return ", ".join(f"{outcome}={count}" for outcome, count in sorted(outcomes.items()))


@shared_task(name="identity.tasks.outbox_requeue", ignore_result=True)
def outbox_requeue() -> int:
    """Publish outbox rows left pending (broker or SMTP was down). Scheduled by celery beat."""
    from identity.services.outbox import outbox_requeue_due

    return outbox_requeue_due()
