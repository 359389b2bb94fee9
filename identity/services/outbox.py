"""The email outbox: enqueue in the caller's transaction, deliver after commit, never lose one.

- ``outbox_enqueue`` writes the row inside the caller's transaction and publishes the delivery
  task only once that transaction commits. Publishing is best-effort and fails fast: with the
  broker down the request still succeeds and celery beat picks the row up later.
- ``outbox_deliver`` claims the row with ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never
  send the same row at once), renders it (an editable kind with the organization's template,
  sandboxed, through ``identity.emails``; the others with django-templated-email), sends it with the row's
  stable ``Message-ID`` and marks it sent in the same transaction. A failure schedules a retry
  with exponential backoff; after ``MAX_ATTEMPTS`` the row is marked failed. Delivery is
  at-least-once: if the process dies after SMTP accepted a message but before the commit, it
  is sent again with the same Message-ID, which lets the receiver recognise the repeat.
  A sent row keeps no copy of its context (an email code must not outlive its email).
- ``outbox_requeue_due`` (celery beat) publishes rows whose next attempt is due, leasing them
  for a while so a row is not published again while it waits in the queue.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.db import transaction
from django.utils import timezone
from templated_email import get_templated_mail

from identity.emails import KINDS, email_render
from identity.models import OutboxMessage
from organizations.models import Organization

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(seconds=60)
REQUEUE_BATCH = 500


def message_id(message: OutboxMessage) -> str:
    domain = urlsplit(settings.BASE_URL).hostname or "actas.local"
    return f"<{message.pk}@{domain}>"


def _publish(message_ids: list[str]) -> None:
    from identity.tasks import outbox_deliver as outbox_deliver_task

    for pk in message_ids:
        try:
            outbox_deliver_task.apply_async(args=[pk], retry=False)
        except Exception:  # the broker is down: celery beat will publish it later
            log.warning("could not publish outbox message %s; it stays pending", pk, exc_info=True)


def outbox_enqueue(
    *,
    tenant: Organization,
    kind: str,
    template: str,
    to_email: str,
    context: dict[str, Any],
    organization: Organization | None = None,
    locale: str = "en",
) -> OutboxMessage:
    """Queue one email. Call inside the transaction of the event it reports.

    ``organization`` (default: the tenant) and ``locale`` choose the email template and the
    branding of an editable kind (``identity.emails.KINDS``); ``context`` holds plain values."""
    message = OutboxMessage.objects.create(
        tenant=tenant,
        organization=organization,
        locale=locale,
        kind=kind,
        template=template,
        to_email=to_email,
        context=context,
        next_attempt_at=timezone.now() + LEASE,
    )
    pk = str(message.pk)
    transaction.on_commit(lambda: _publish_soon([pk]))
    return message


def _publish_soon(message_ids: list[str]) -> None:
    """Publish without making the request wait for the broker (a refused connection still
    costs seconds); in the eager embedded mode the task runs right here."""
    from config.celery import app

    if app.conf.task_always_eager:
        _publish(message_ids)
    else:
        threading.Thread(target=_publish, args=(message_ids,), name="outbox-publish", daemon=True).start()


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def _build(message: OutboxMessage) -> EmailMessage:
    """The email of a row: an editable kind renders the organization's template (or the one it
    inherits) in the sandbox of ``identity.emails``; the others use django-templated-email."""
    headers = {"Message-ID": message_id(message)}
    if message.template in KINDS:
        org = message.organization or message.tenant
        rendered = email_render(
            org=org, kind=message.template, locale=message.locale, values=dict(message.context)
        )
        email = EmailMultiAlternatives(
            subject=rendered.subject, body=rendered.text, to=[message.to_email], headers=headers
        )
        email.attach_alternative(rendered.html, "text/html")
        return email
    return get_templated_mail(message.template, dict(message.context), to=[message.to_email], headers=headers)


def outbox_deliver(*, message_id_value: str) -> str:
    """Send one pending message. Returns what happened: sent, retry, failed or skipped."""
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id_value, status=OutboxMessage.Status.PENDING)
            .first()
        )
        if message is None:
            return "skipped"  # already sent or failed, or another worker holds it
        message.attempts += 1
        try:
            _build(message).send()
        except Exception as exc:  # SMTP down, template error: keep the row and say why
            message.last_error = f"{exc.__class__.__name__}: {exc}"[:2000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxMessage.Status.FAILED
                log.error("outbox message %s failed for good: %s", message.pk, message.last_error)
            else:
                message.next_attempt_at = timezone.now() + _backoff(message.attempts)
            message.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
            return "failed" if message.status == OutboxMessage.Status.FAILED else "retry"
        message.status = OutboxMessage.Status.SENT
        message.sent_at = timezone.now()
        message.last_error = ""
        message.context = {}
        message.save(update_fields=["attempts", "last_error", "status", "sent_at", "context"])
        return "sent"


def outbox_requeue_due(*, now: dt.datetime | None = None) -> int:
    """Publish pending rows whose next attempt is due; lease them so they go out once."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:REQUEUE_BATCH]
        )
        OutboxMessage.objects.filter(pk__in=due).update(next_attempt_at=now + LEASE)
    _publish([str(pk) for pk in due])
    return len(due)
