"""Playing a database administrator against the audit trail (the tests of verification)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction

from identity.audit.models import AuditEvent


@contextmanager
def tampering() -> Iterator[None]:
    """Bypass the append-only trigger as someone with DDL rights would (PostgreSQL; SQLite has
    no trigger)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Deferred foreign-key checks must fire before the table can be altered.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE identity_auditevent DISABLE TRIGGER audit_event_append_only")
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE identity_auditevent ENABLE TRIGGER audit_event_append_only")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def tamper_with_first_event(tenant_handle: str) -> None:
    """Rewrite the action of the tenant's first event behind the chain's back."""
    event = AuditEvent.objects.filter(tenant__handle=tenant_handle).order_by("seq").first()
    assert event is not None
    with transaction.atomic(), tampering():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
