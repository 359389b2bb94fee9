"""The email outbox against a real SMTP server, and through a real Celery worker on Redis."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from identity.notifications.models import OutboxMessage
from identity.notifications.outbox import (
    MAX_ATTEMPTS,
    message_id,
    outbox_deliver,
    outbox_deliver_batch,
    outbox_enqueue,
    outbox_requeue_due,
)
from organizations.services import org_insert

CONTEXT = {"code": "482913", "minutes": 10, "org_name": "Acme", "user_name": "Erin"}


def _enqueue(tenant: Any, to: str = "erin@example.test") -> OutboxMessage:
    return outbox_enqueue(tenant=tenant, kind="email-otp", template="email_otp", to_email=to, context=CONTEXT)


@pytest.fixture
def tenant(db: None) -> Any:
    return org_insert(parent=None, name="Acme", handle="acme")


def test_deliver_sends_once_with_a_stable_message_id(tenant: Any, smtp_sink: Any) -> None:
    message = _enqueue(tenant)
    assert outbox_deliver(message_id_value=str(message.pk)) == "sent"
    assert outbox_deliver(message_id_value=str(message.pk)) == "skipped"
    received = smtp_sink.wait_for(1)
    assert len(received) == 1
    mail = received[0]
    assert mail["Message-ID"] == message_id(message)
    assert mail["To"] == "erin@example.test"
    assert mail["Subject"] == "Your Acme sign-in code"
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in mail.walk()
        if not part.is_multipart()
    }
    assert "482913" in parts["text/plain"] and "482913" in parts["text/html"]
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 1 and message.sent_at is not None
    assert message.context == {}  # the code does not outlive its email


def test_smtp_down_keeps_the_row_and_backs_off(tenant: Any, settings: Any) -> None:
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 9, "timeout": 2},
        }
    }
    message = _enqueue(tenant)
    before = timezone.now()
    assert outbox_deliver(message_id_value=str(message.pk)) == "retry"
    message.refresh_from_db()
    assert message.status == "pending" and message.attempts == 1
    assert "Error" in message.last_error or "refused" in message.last_error.lower()
    assert message.next_attempt_at >= before + dt.timedelta(seconds=29)
    message.attempts = MAX_ATTEMPTS - 1
    message.save()
    assert outbox_deliver(message_id_value=str(message.pk)) == "failed"
    message.refresh_from_db()
    assert message.status == "failed"


def test_enqueue_rolls_back_with_its_transaction(tenant: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        _enqueue(tenant)
        raise RuntimeError
    assert not OutboxMessage.objects.exists()


def test_requeue_publishes_due_rows_once(tenant: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[list[str]] = []
    monkeypatch.setattr("identity.notifications.outbox._publish", published.append)
    due = _enqueue(tenant)
    _enqueue(tenant)  # not due yet: still inside its first lease
    later = timezone.now() + dt.timedelta(seconds=61)
    OutboxMessage.objects.filter(pk=due.pk).update(next_attempt_at=timezone.now())
    assert outbox_requeue_due() == 1
    assert published[-1] == [str(due.pk)]
    assert outbox_requeue_due() == 0  # leased
    assert outbox_requeue_due(now=later + dt.timedelta(seconds=61)) == 2


def test_broker_down_does_not_break_the_caller(
    tenant: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from kombu.exceptions import OperationalError

    from identity.notifications import tasks

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.outbox_deliver, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        message = _enqueue(tenant)  # publishes on commit, and must not raise
    assert len(callbacks) == 1
    assert "stays pending" in caplog.text
    assert OutboxMessage.objects.get(pk=message.pk).status == "pending"


def _count_smtp_connections(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from django.core.mail.backends.smtp import EmailBackend

    opened: list[int] = []
    real_open = EmailBackend.open

    def counting_open(self: EmailBackend) -> bool | None:
        created = real_open(self)
        if created:
            opened.append(1)
        return created

    monkeypatch.setattr(EmailBackend, "open", counting_open)
    return opened


def test_a_batch_drains_new_rows_over_one_connection_and_leaves_backoffs_alone(
    tenant: Any, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("identity.notifications.outbox._publish_soon", lambda message_ids: None)
    first, *others = [_enqueue(tenant, to=f"user{i}@example.test") for i in range(5)]
    waiting = _enqueue(tenant, to="waiting@example.test")  # in its retry backoff
    OutboxMessage.objects.filter(pk=waiting.pk).update(
        attempts=1, next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )
    opened = _count_smtp_connections(monkeypatch)

    assert outbox_deliver_batch(message_id_value=str(first.pk)) == {"sent": 5}
    received = smtp_sink.wait_for(5)
    assert sorted(m["To"] for m in received) == [f"user{i}@example.test" for i in range(5)]
    assert {m["Message-ID"] for m in received} == {message_id(m) for m in [first, *others]}
    assert len(opened) == 1  # one SMTP connection for the five
    assert set(OutboxMessage.objects.exclude(pk=waiting.pk).values_list("status", "attempts")) == {
        ("sent", 1)
    }
    assert OutboxMessage.objects.get(pk=waiting.pk).status == "pending"  # not sent before its time
    # The tasks of the drained rows find them sent.
    assert outbox_deliver_batch(message_id_value=str(others[0].pk)) == {"skipped": 1}
    assert len(smtp_sink.messages) == 5


def test_a_batch_respects_its_limit_and_stops_at_the_first_failure(
    tenant: Any, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("identity.notifications.outbox._publish_soon", lambda message_ids: None)
    rows = [_enqueue(tenant, to=f"user{i}@example.test") for i in range(6)]
    assert outbox_deliver_batch(message_id_value=str(rows[0].pk), limit=2) == {"sent": 2}
    smtp_sink.refuse_next = 1  # the next message is refused with 451
    assert outbox_deliver_batch(message_id_value=str(rows[5].pk)) == {"retry": 1}
    assert OutboxMessage.objects.filter(status="pending", attempts=0).count() == 3  # not tried
    assert outbox_deliver_batch(message_id_value=str(rows[2].pk)) == {"sent": 3}
    assert OutboxMessage.objects.get(pk=rows[5].pk).attempts == 1  # left to its backoff
    assert len(smtp_sink.messages) == 5


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_delivered_by_a_real_worker(celery_worker_live: Any, smtp_sink: Any) -> None:
    tenant = org_insert(parent=None, name="Acme", handle="acme")
    with transaction.atomic():
        messages = [_enqueue(tenant, to=f"user{i}@example.test") for i in range(3)]
    received = smtp_sink.wait_for(3, timeout=20)
    assert sorted(m["To"] for m in received) == [f"user{i}@example.test" for i in range(3)]
    assert {m["Message-ID"] for m in received} == {message_id(m) for m in messages}
    # The worker marks a row sent after the SMTP server accepted it: wait for the commit.
    deadline = time.monotonic() + 10
    while OutboxMessage.objects.filter(status="sent").count() < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert OutboxMessage.objects.filter(status="sent").count() == 3


def test_a_failure_inside_a_claim_leaves_the_rest_of_it_pending(
    tenant: Any, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from identity.notifications import outbox

    monkeypatch.setattr("identity.notifications.outbox._publish_soon", lambda message_ids: None)
    rows = [_enqueue(tenant, to=f"user{i}@example.test") for i in range(4)]
    real_build = outbox._build

    def build(message: OutboxMessage, cache: Any = None) -> Any:
        if message.pk == rows[1].pk:
            raise RuntimeError("template broke")
        return real_build(message, cache)

    monkeypatch.setattr(outbox, "_build", build)
    assert outbox_deliver_batch(message_id_value=str(rows[0].pk)) == {"sent": 1, "retry": 1}
    states = {m.pk: (m.status, m.attempts) for m in OutboxMessage.objects.all()}
    assert states[rows[0].pk] == ("sent", 1)
    assert states[rows[1].pk] == ("pending", 1)
    assert states[rows[2].pk] == states[rows[3].pk] == ("pending", 0)  # claimed, then left alone
    assert "template broke" in OutboxMessage.objects.get(pk=rows[1].pk).last_error
    assert [m["To"] for m in smtp_sink.messages] == ["user0@example.test"]


def test_a_batch_sends_the_default_wording_for_a_template_over_a_limit(tenant: Any) -> None:
    from django.core import mail

    from identity.audit.models import AuditEvent
    from identity.notifications.models import EmailTemplate

    # An organization template saved before the sandbox had limits: three loops, 35,937 passes.
    nested = "{% for a in code %}{% for b in code %}{% for c in code %}.{% endfor %}{% endfor %}{% endfor %}"
    EmailTemplate.objects.create(
        organization=tenant, kind="email_otp", locale="en", subject="Custom", html_body="x", text_body=nested
    )
    long_code = {**CONTEXT, "code": "0123456789" * 4}
    rows = [
        outbox_enqueue(
            tenant=tenant,
            kind="email-otp",
            template="email_otp",
            to_email=f"u{i}@example.test",
            context=long_code,
        )
        for i in range(2)
    ]
    mail.outbox.clear()
    assert outbox_deliver_batch(message_id_value=str(rows[0].pk)) == {"sent": 2}
    assert [m.subject for m in mail.outbox] == ["Your Acme sign-in code"] * 2
    events = AuditEvent.objects.filter(action="email-template-fallback").order_by("seq")
    assert [e.data["outbox_message"] for e in events] == [str(r.pk) for r in rows]
    assert all("more than 10,000 times" in e.data["error"] for e in events)
