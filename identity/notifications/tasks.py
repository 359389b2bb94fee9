"""Thin Celery tasks of the outbox.

Task names keep the ``identity.tasks.`` prefix they had before notifications became an app of
its own, so messages already queued and the beat schedule stay valid."""

from __future__ import annotations

from celery import Task, shared_task


@shared_task(name="identity.tasks.outbox_deliver", bind=True, acks_late=True, ignore_result=True)
def outbox_deliver(self: Task, message_id: str) -> str:
    """Deliver one outbox email (retries are scheduled in the row, not by Celery); in a
    worker, then drain other new rows over the same SMTP connection (``outbox_deliver_batch``).
    Run eagerly (the embedded mode) it sends its own row only."""
    from identity.notifications.outbox import outbox_deliver as deliver
    from identity.notifications.outbox import outbox_deliver_batch

    if self.request.is_eager:
        return deliver(message_id_value=message_id)
    outcomes = outbox_deliver_batch(message_id_value=message_id)
    return ", ".join(f"{outcome}={count}" for outcome, count in sorted(outcomes.items()))


@shared_task(name="identity.tasks.outbox_requeue", ignore_result=True)
def outbox_requeue() -> int:
    """Publish outbox rows left pending (broker or SMTP was down). Scheduled by celery beat."""
    from identity.notifications.outbox import outbox_requeue_due

    return outbox_requeue_due()
