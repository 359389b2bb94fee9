"""identity's Celery tasks, run by a real Celery worker over the real Redis broker."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from identity.audit import tasks
from identity.audit.models import AuditEvent
from identity.services.tenants import tenant_bootstrap

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def make_tenant() -> None:
    tenant_bootstrap(
        actor=None,
        handle="t1",
        name="T1",
        admin_username="admin",
        admin_password="a-long-password-1",
    )


def test_audit_verify_all_through_the_worker_finds_intact_chains(celery_worker_live: object) -> None:
    make_tenant()

    result = tasks.audit_verify_all.delay().get(timeout=20)

    assert result == {"tenants": 1, "broken": []}


def test_audit_verify_all_through_the_worker_names_a_tampered_tenant(
    celery_worker_live: object,
) -> None:
    make_tenant()
    event = AuditEvent.objects.filter(tenant__handle="t1").order_by("seq").first()
    assert event is not None
    with transaction.atomic():
        postgres = connection.vendor == "postgresql"
        if postgres:  # the append-only trigger refuses UPDATE; an attacker with DDL rights would not
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE identity_auditevent DISABLE TRIGGER audit_event_append_only")
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
        if postgres:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE identity_auditevent ENABLE TRIGGER audit_event_append_only")

    result = tasks.audit_verify_all.delay().get(timeout=20)

    assert result == {"tenants": 1, "broken": ["t1"]}
