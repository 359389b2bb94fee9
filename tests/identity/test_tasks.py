"""identity's Celery tasks, run by a real Celery worker over the real Redis broker."""

from __future__ import annotations

import pytest

from identity.audit import tasks
from identity.services.tenants import tenant_bootstrap
from tests.identity.audit_helpers import tamper_with_first_event

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
    tamper_with_first_event("t1")

    result = tasks.audit_verify_all.delay().get(timeout=20)

    assert result == {"tenants": 1, "broken": ["t1"]}
