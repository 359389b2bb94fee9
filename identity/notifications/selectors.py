"""Reads of the email outbox for monitoring."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Min

from identity.notifications.models import OutboxMessage


@dataclass(frozen=True)
class OutboxBacklog:
    pending: int
    failed: int
    oldest_pending: dt.datetime | None


def outbox_backlog() -> OutboxBacklog:
    """Emails not sent yet and given up on, and when the oldest pending one was written: one
    grouped statement over the rows not sent (the status index keeps sent rows out of it)."""
    counts: dict[str, int] = {}
    oldest: dict[str, dt.datetime | None] = {}
    for row in (
        OutboxMessage.objects.filter(status__in=[OutboxMessage.Status.PENDING, OutboxMessage.Status.FAILED])
        .values("status")
        .annotate(count=Count("id"), oldest=Min("created_at"))
        .order_by()
    ):
        counts[row["status"]] = row["count"]
        oldest[row["status"]] = row["oldest"]
    return OutboxBacklog(
        pending=counts.get(OutboxMessage.Status.PENDING, 0),
        failed=counts.get(OutboxMessage.Status.FAILED, 0),
        oldest_pending=oldest.get(OutboxMessage.Status.PENDING),
    )
