"""The email outbox: enqueue in the caller's transaction, deliver after commit, never lose one.

- ``outbox_enqueue`` writes the row inside the caller's transaction and, once that transaction
  commits, hands its id to the process's publisher thread, which publishes one delivery task
  per batch of ids gathered meanwhile (``_Publisher``). Publishing is best-effort and never
  holds up the request: with the broker down the request still succeeds and celery beat
  picks the row up later.
- ``outbox_deliver`` claims the row with ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never
  send the same row at once), renders it (an editable kind with the organization's template,
  sandboxed, through ``identity.notifications.emails`` — or with actas's default wording, audited as
  ``email-template-fallback``, when that template goes over a limit of the sandbox; the others
  with django-templated-email), sends it with the row's stable ``Message-ID`` and marks it sent
  in the same transaction. A failure schedules a retry with exponential backoff; after
  ``MAX_ATTEMPTS`` the row is marked failed. Delivery is
  at-least-once: if the process dies after SMTP accepted a message but before the commit, it
  is sent again with the same Message-ID, which lets the receiver recognise the repeat.
  A sent row keeps no copy of its context (an email code must not outlive its email).
- ``outbox_requeue_due`` (celery beat) publishes rows whose next attempt is due, leasing them
  for a while so a row is not published again while it waits in the queue.
- ``outbox_deliver_batch`` (what the worker's task runs) delivers its row as
  ``outbox_deliver`` does and then, over the same SMTP connection, drains up to
  ``DRAIN_BATCH - 1`` more never-attempted pending rows, oldest first, claimed
  ``DRAIN_CLAIM`` at a time (``SKIP LOCKED``), each marked as it is sent, the claim committed
  once its rows are done. Under a burst a worker thus stops paying a task, a broker round trip,
  an SMTP handshake and a transaction per email; the tasks of rows already drained find them
  sent and skip. Rows waiting out a retry backoff are never drained early, and the drain stops
  at the first failure (the rest of that claim stays pending, untouched). A crash in the middle
  of a claim re-sends at most its ``DRAIN_CLAIM`` messages, each with its Message-ID.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.utils import timezone
from templated_email import get_templated_mail

from identity.audit.models import AuditEvent
from identity.audit.services import audit_record
from identity.notifications.emails import KINDS, RenderCache, TemplateFallback, email_render
from identity.notifications.models import OutboxMessage
from organizations.models import Organization

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(seconds=60)
REQUEUE_BATCH = 500
DRAIN_BATCH = 50  # rows one task may deliver over one SMTP connection
DRAIN_CLAIM = 10  # rows claimed (and at risk of a repeat after a crash) per transaction


def message_id(message: OutboxMessage) -> str:
    domain = urlsplit(settings.BASE_URL).hostname or "actas.local"
    return f"<{message.pk}@{domain}>"


def _publish(message_ids: list[str]) -> None:
    from identity.notifications.tasks import outbox_deliver as outbox_deliver_task

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
    branding of an editable kind (``identity.notifications.emails.KINDS``); ``context`` holds plain values."""
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


class _Publisher:
    """Publishes delivery tasks off the request's path: one thread per process, fed by a queue.

    A request only puts its row ids in the queue (after its commit). The thread takes whatever
    has gathered and publishes one task per ``DRAIN_BATCH`` ids: each task delivers its row and
    drains up to ``DRAIN_BATCH - 1`` more never-attempted ones (``outbox_deliver_batch``), so a
    burst costs a broker round trip per batch rather than per email, and the rows whose task
    was not published are delivered by those drains (or, should a drain not reach them, by
    celery beat once their lease is over). With the broker down the thread, not the request,
    waits for it to give up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()

    def submit(self, message_ids: list[str]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use in this process (also after a fork)
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                threading.Thread(
                    target=self._run, args=(self._queue,), name="outbox-publish", daemon=True
                ).start()
            self._idle.clear()
            for pk in message_ids:
                self._queue.put(pk)

    def _run(self, pending: queue.SimpleQueue[str]) -> None:
        while True:
            batch = [pending.get()]
            while True:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            try:
                _publish(batch[::DRAIN_BATCH])
            except Exception:  # never let the thread die: beat re-queues what is left
                log.exception("publishing %d outbox message(s) failed; they stay pending", len(batch))
            with self._lock:
                if pending.empty():
                    self._idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far was published (or failed to be)."""
        return self._idle.wait(timeout)


publisher = _Publisher()


def _publish_soon(message_ids: list[str]) -> None:
    """Publish without making the request wait for the broker (a refused connection still
    costs seconds); in the eager embedded mode the task runs right here."""
    from celery import current_app

    if current_app.conf.task_always_eager:
        _publish(message_ids)
    else:
        publisher.submit(message_ids)


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))


def _build(message: OutboxMessage, cache: RenderCache | None = None) -> EmailMessage:
    """The email of a row: an editable kind renders the organization's template (or the one it
    inherits) in the sandbox of ``identity.notifications.emails``; the others use django-templated-email.
    ``cache``: the batch's template and branding look-ups (``email_render``)."""
    headers = {"Message-ID": message_id(message)}
    if message.template in KINDS:
        org = message.organization or message.tenant
        rendered = email_render(
            org=org, kind=message.template, locale=message.locale, values=dict(message.context), cache=cache
        )
        if rendered.fallback is not None:
            _audit_fallback(message, org, rendered.fallback)
        email = EmailMultiAlternatives(
            subject=rendered.subject, body=rendered.text, to=[message.to_email], headers=headers
        )
        email.attach_alternative(rendered.html, "text/html")
        return email
    return get_templated_mail(message.template, dict(message.context), to=[message.to_email], headers=headers)


def _audit_fallback(message: OutboxMessage, org: Organization, fallback: TemplateFallback) -> None:
    """The organization's template went over a limit of the sandbox: the email is sent with
    actas's default wording, and the audit trail says which template and why (in the row's
    claiming transaction)."""
    template = fallback.template
    log.warning(
        "outbox message %s: the email template %s is over a limit (%s); sending the default wording",
        message.pk,
        template.template_id,
        fallback.error,
    )
    audit_record(
        org=org,
        action="email-template-fallback",
        actor=None,
        target_type="email-template",
        target_id=template.template_id,
        outcome=AuditEvent.Outcome.FAILURE,
        data={
            "kind": template.kind,
            "locale": template.locale,
            "template_org": str(template.source.pk) if template.source is not None else None,
            "outbox_message": str(message.pk),
            "attempt": message.attempts,
            "error": fallback.error,
        },
    )


def outbox_deliver(*, message_id_value: str) -> str:
    """Send one pending message. Returns what happened: sent, retry, failed or skipped."""
    return _deliver_row(message_id_value, None)


def _deliver_row(message_id_value: str, mailer: _LazyMailer | None) -> str:
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("organization", "tenant")
            .filter(pk=message_id_value, status=OutboxMessage.Status.PENDING)
            .first()
        )
        if message is None:
            return "skipped"  # already sent or failed, or another worker holds it
        _commit_without_waiting_for_flush()
        return _send_claimed(message, mailer)


def _send_claimed(message: OutboxMessage, mailer: _LazyMailer | None) -> str:
    """Send a row claimed (locked) by the caller's transaction and record the outcome."""
    message.attempts += 1
    try:
        email = _build(message, mailer.render_cache if mailer is not None else None)
        if mailer is None:
            email.send()  # a connection for this one message
        else:
            mailer.send(email)
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


def _commit_without_waiting_for_flush() -> None:
    """Let this transaction (a row's claim and its outcome) commit without waiting for the WAL
    flush (PostgreSQL's ``synchronous_commit = off``, for this transaction only). Only a crash of
    the database server in the following fraction of a second can lose the outcome; the row is
    then still pending and is sent again with the same Message-ID, which is the at-least-once
    delivery the outbox promises anyway. Each row then costs no disk flush of its own."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


class _LazyMailer:
    """The default mailer, connected on first use and kept open until ``close``; after a
    failure the connection is dropped (it may be broken) and the next use connects again.
    It also keeps the batch's template and branding look-ups (``render_cache``)."""

    def __init__(self) -> None:
        self.backend: BaseEmailBackend | None = None
        self.render_cache: RenderCache = {}

    def send(self, email: EmailMessage) -> None:
        try:
            if self.backend is None:
                self.backend = mailers.default
                self.backend.open()  # kept open: send_messages() closes only what it opened
            self.backend.send_messages([email])
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        backend, self.backend = self.backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception:  # a connection that broke while sending: nothing left to close
                log.debug("closing the SMTP connection failed", exc_info=True)


def _claim_fresh(count: int) -> list[OutboxMessage]:
    """Lock the oldest ``count`` pending rows never attempted (their task is queued, or their
    publish failed and celery beat will publish them), skipping rows other workers hold."""
    return list(
        OutboxMessage.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("organization", "tenant")
        .filter(status=OutboxMessage.Status.PENDING, attempts=0)
        .order_by("next_attempt_at")[:count]
    )


def outbox_deliver_batch(*, message_id_value: str, limit: int | None = None) -> dict[str, int]:
    """Deliver one row (as ``outbox_deliver``), then drain up to ``limit - 1`` (default
    ``DRAIN_BATCH``) more never-attempted pending rows over the same SMTP connection,
    ``DRAIN_CLAIM`` per transaction. Stops at the first failure or when none is left. Returns
    the count of each outcome."""
    limit = DRAIN_BATCH if limit is None else max(1, limit)
    outcomes: dict[str, int] = {}
    lazy = _LazyMailer()
    try:
        outcome = _deliver_row(message_id_value, lazy)  # "skipped" when a drain sent it already
        outcomes[outcome] = 1
        if outcome in ("retry", "failed"):
            return outcomes
        remaining = limit - 1
        while remaining > 0 and outcome in ("sent", "skipped"):
            with transaction.atomic():
                claimed = _claim_fresh(min(DRAIN_CLAIM, remaining))
                if not claimed:
                    break
                _commit_without_waiting_for_flush()
                for message in claimed:
                    outcome = _send_claimed(message, lazy)
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    remaining -= 1
                    if outcome != "sent":
                        break  # SMTP trouble: the rest of the claim stays pending, untouched
        return outcomes
    finally:
        lazy.close()


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
